-- name: fallback_reasons
-- answers: Why requests fell back in a window, per adapter: each fallback reason, its count and its share of the adapter's generations.
-- params: since (timestamp, optional), until (timestamp, optional)
-- One pass: every generation is counted by (adapter, fell back or not, reason), and the adapter's total is summed
-- over all of its groups before the ones that did not fall back are left out.
WITH by_reason AS (
    SELECT
        coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
        coalesce(fallback, false) AS fell_back,
        coalesce(fallback_reason, '(none given)') AS fallback_reason,
        count(*) AS n,
        sum(count(*)) OVER (PARTITION BY coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model))) AS total
    FROM generations
    WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
    GROUP BY 1, 2, 3
)
SELECT served_by, fallback_reason, n AS fallbacks, CAST(total AS BIGINT) AS generations, n / total AS share
FROM by_reason
WHERE fell_back
ORDER BY fallbacks DESC, served_by, fallback_reason
