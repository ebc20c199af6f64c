-- Revenue by month and currency
-- Revenue (units_sold x unit_price) of the live sales (current state), by the month the sale
-- was created, per currency. Amounts in different currencies are never added together.
WITH live AS (
    SELECT f.*
    FROM fact_sales_order AS f
    JOIN (
        SELECT sales_order_id, MAX(last_updated) AS latest_update
        FROM fact_sales_order
        GROUP BY sales_order_id
    ) AS latest
        ON f.sales_order_id = latest.sales_order_id
        AND f.last_updated = latest.latest_update
    WHERE f.change_type <> 'delete'
)
SELECT
    d.year AS created_year,
    d.month AS created_month,
    c.currency_code AS currency_code,
    COUNT(*) AS sales,
    SUM(CAST(live.units_sold AS BIGINT)) AS units_sold,
    SUM(live.units_sold * live.unit_price) AS revenue
FROM live
JOIN dim_date AS d ON d.date_id = live.created_date
JOIN dim_currency AS c ON c.currency_id = live.currency_id
GROUP BY d.year, d.month, c.currency_code
ORDER BY created_year, created_month, currency_code
