-- name: finish_reasons_by_adapter
-- answers: How generations ended per adapter (or base model) in a window: stop, length (truncated), content_filter (refused), error, with each reason's share: did an adapter start truncating or refusing?
-- params: since (timestamp, optional), until (timestamp, optional)
SELECT
    coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
    coalesce(finish_reason, '(none given)') AS finish_reason,
    count(*) AS generations,
    count(*) / sum(count(*)) OVER (PARTITION BY coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model))) AS share
FROM generations
WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY 1, 2
ORDER BY served_by, generations DESC, finish_reason
