-- name: adapters_in_cohort
-- answers: Which adapters (name and id, or the base model) served a cohort in a window, how much, and when each was first and last seen there.
-- params: cohort (text), since (timestamp, optional), until (timestamp, optional)
SELECT
    coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
    adapter_id,
    variant,
    count(*) AS generations,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen
FROM generations
WHERE cohort = $cohort
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
ORDER BY generations DESC, served_by, adapter_id
