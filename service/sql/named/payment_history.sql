-- One payment's history
-- Every stored version of one payment, oldest first (created unpaid, later paid), its deletion
-- included: the same rows as `totesys history --fact payment`.
-- parameter: payment_id integer
SELECT *
FROM fact_payment
WHERE payment_id = ?
ORDER BY last_updated, payment_record_id
