-- name: adapter_hourly
-- answers: One adapter hour by hour in a window: generations, error, timeout, fallback and schema-retry counts, and p95 duration, to see when a problem started.
-- params: adapter (text), since (timestamp, optional), until (timestamp, optional)
SELECT
    date_trunc('hour', start_time) AS hour,
    count(*) AS generations,
    count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
    count(*) FILTER (WHERE error_type ILIKE '%timeout%') AS timeouts,
    count(*) FILTER (WHERE fallback) AS fallbacks,
    count(*) FILTER (WHERE schema_attempts > 1) AS schema_retries,
    round(quantile_cont(duration_ns / 1e6, 0.95), 3) AS p95_ms,
    count(DISTINCT adapter_id) AS adapter_ids
FROM generations
WHERE adapter_name = $adapter
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
ORDER BY hour
