-- Top 10 counterparties by revenue
-- The ten counterparties with the most revenue (units_sold x unit_price) from live sales in
-- one currency (amounts in different currencies are not added up); ties by counterparty_id.
-- parameter: currency_code varchar
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
    cp.counterparty_id AS counterparty_id,
    cp.counterparty_legal_name AS counterparty_legal_name,
    c.currency_code AS currency_code,
    COUNT(*) AS sales,
    SUM(live.units_sold * live.unit_price) AS revenue
FROM live
JOIN dim_counterparty AS cp ON cp.counterparty_id = live.counterparty_id
JOIN dim_currency AS c ON c.currency_id = live.currency_id
WHERE c.currency_code = ?
GROUP BY cp.counterparty_id, cp.counterparty_legal_name, c.currency_code
ORDER BY revenue DESC, counterparty_id
LIMIT 10
