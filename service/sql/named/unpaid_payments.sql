-- Unpaid payments by counterparty and currency
-- What is still to be paid or received: the live payments (current state) not yet paid, per
-- counterparty and currency, with their count, total amount and earliest payment date. Amounts
-- in different currencies are never added together.
WITH live AS (
    SELECT p.*
    FROM fact_payment AS p
    JOIN (
        SELECT payment_id, MAX(last_updated) AS latest_update
        FROM fact_payment
        GROUP BY payment_id
    ) AS latest
        ON p.payment_id = latest.payment_id
        AND p.last_updated = latest.latest_update
    WHERE p.change_type <> 'delete'
)
SELECT
    cp.counterparty_id AS counterparty_id,
    cp.counterparty_legal_name AS counterparty_legal_name,
    c.currency_code AS currency_code,
    COUNT(*) AS payments,
    SUM(live.payment_amount) AS amount_unpaid,
    MIN(live.payment_date) AS earliest_payment_date
FROM live
JOIN dim_counterparty AS cp ON cp.counterparty_id = live.counterparty_id
JOIN dim_currency AS c ON c.currency_id = live.currency_id
WHERE live.paid = false
GROUP BY cp.counterparty_id, cp.counterparty_legal_name, c.currency_code
ORDER BY counterparty_id, currency_code
