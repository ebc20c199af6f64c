-- Current state of every sale
-- Each sale's latest version, unless that version is a deletion: the same rows as
-- `totesys current` and the fact_sales_order_current view of `totesys sql`.
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
ORDER BY f.sales_order_id
