-- Current sales with the salesperson's department as it was then
-- Each live sale (its latest version, unless that is a deletion) with its salesperson as they
-- stood at the sale's last_updated (business time), from dim_staff_history: the department and
-- its location in the state valid then (valid_from <= last_updated < valid_to). Null when the
-- salesperson had no known state by then.
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
    live.sales_order_id,
    live.last_updated,
    live.sales_staff_id,
    h.first_name,
    h.last_name,
    h.department_name,
    h.location,
    h.valid_from AS staff_state_valid_from
FROM live
LEFT JOIN dim_staff_history AS h
    ON h.staff_id = live.sales_staff_id
    AND h.valid_from <= live.last_updated
    AND (h.valid_to IS NULL OR live.last_updated < h.valid_to)
ORDER BY live.sales_order_id
