-- One purchase order's history
-- Every stored version of one purchase order, oldest first, its deletion included: the same
-- rows as `totesys history --fact purchase_order`.
-- parameter: purchase_order_id integer
SELECT *
FROM fact_purchase_order
WHERE purchase_order_id = ?
ORDER BY last_updated, purchase_record_id
