-- Sales as of a time
-- Every sale as it stood at a business time: its latest version with last_updated at or
-- before that time, unless that version is a deletion. The same rows as
-- `totesys current --as-of` and the fact_sales_order_as_of view of `totesys sql`.
-- parameter: as_of timestamp
SELECT f.*
FROM fact_sales_order AS f
JOIN (
    SELECT sales_order_id, MAX(last_updated) AS latest_update
    FROM fact_sales_order
    WHERE last_updated <= CAST(? AS TIMESTAMP)
    GROUP BY sales_order_id
) AS latest
    ON f.sales_order_id = latest.sales_order_id
    AND f.last_updated = latest.latest_update
WHERE f.change_type <> 'delete'
ORDER BY f.sales_order_id
