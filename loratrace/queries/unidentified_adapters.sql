-- name: unidentified_adapters
-- answers: Adapter traffic that cannot be pinned to exact weights or configuration in a window (no stable id, rank or base model on the span): the release-hygiene gaps that make an incident unanswerable.
-- params: since (timestamp, optional), until (timestamp, optional)
SELECT
    adapter_name,
    service_name,
    count(*) AS generations,
    count(*) FILTER (WHERE adapter_id IS NULL) AS without_id,
    count(*) FILTER (WHERE adapter_rank IS NULL) AS without_rank,
    count(*) FILTER (WHERE base_model_name IS NULL) AS without_base_model,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen
FROM generations
WHERE adapter_name IS NOT NULL
  AND (adapter_id IS NULL OR adapter_rank IS NULL OR base_model_name IS NULL)
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
ORDER BY generations DESC, adapter_name, service_name
