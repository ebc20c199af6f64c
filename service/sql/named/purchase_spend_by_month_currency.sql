-- Purchase spend by month and currency
-- Spend (item_quantity x item_unit_price) of the live purchase orders (current state), by the
-- month the order was created, per currency. Amounts in different currencies are never added
-- together.
WITH live AS (
    SELECT f.*
    FROM fact_purchase_order AS f
    JOIN (
        SELECT purchase_order_id, MAX(last_updated) AS latest_update
        FROM fact_purchase_order
        GROUP BY purchase_order_id
    ) AS latest
        ON f.purchase_order_id = latest.purchase_order_id
        AND f.last_updated = latest.latest_update
    WHERE f.change_type <> 'delete'
)
SELECT
    d.year AS created_year,
    d.month AS created_month,
    c.currency_code AS currency_code,
    COUNT(*) AS purchase_orders,
    SUM(CAST(live.item_quantity AS BIGINT)) AS items,
    SUM(live.item_quantity * live.item_unit_price) AS spend
FROM live
JOIN dim_date AS d ON d.date_id = live.created_date
JOIN dim_currency AS c ON c.currency_id = live.currency_id
GROUP BY d.year, d.month, c.currency_code
ORDER BY created_year, created_month, currency_code
