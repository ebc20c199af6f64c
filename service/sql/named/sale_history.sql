-- One sale's history
-- Every stored version of one sales order, oldest first, its deletion included: the same rows
-- as `totesys history`.
-- parameter: sales_order_id integer
SELECT *
FROM fact_sales_order
WHERE sales_order_id = ?
ORDER BY last_updated, sales_record_id
