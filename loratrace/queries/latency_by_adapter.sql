-- name: latency_by_adapter
-- answers: p50 / p95 / p99 of generation duration and time to first token per adapter (and the base model) in a window: which adapter got slow.
-- params: since (timestamp, optional), until (timestamp, optional)
SELECT
    coalesce(adapter_name, '(base) ' || coalesce(base_model_name, model)) AS served_by,
    count(*) AS generations,
    round(quantile_cont(duration_ns / 1e6, 0.50), 3) AS p50_ms,
    round(quantile_cont(duration_ns / 1e6, 0.95), 3) AS p95_ms,
    round(quantile_cont(duration_ns / 1e6, 0.99), 3) AS p99_ms,
    round(quantile_cont(ttft_ms, 0.99), 3) AS ttft_p99_ms
FROM generations
WHERE start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
GROUP BY ALL
ORDER BY p99_ms DESC, served_by
