-- name: slowest_traces
-- answers: The slowest traces of one adapter in a window (first span start to last span end), with their generation count and time to first token.
-- params: adapter (text), since (timestamp, optional), until (timestamp, optional), limit (integer, default 20)
WITH traces AS (
    SELECT trace_id
    FROM generations
    WHERE adapter_name = $adapter
      AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
      AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
    GROUP BY trace_id
)
SELECT
    s.trace_id,
    min(s.start_time) AS started,
    (max(s.end_time_unix_nano) - min(s.start_time_unix_nano)) / 1e6 AS trace_ms,
    count(*) FILTER (WHERE s.operation_name IS NOT NULL) AS generations,
    max(s.ttft_ms) AS max_ttft_ms,
    bool_or(s.status_code = 'ERROR') AS has_error
FROM spans AS s
WHERE s.trace_id IN (SELECT trace_id FROM traces)
GROUP BY s.trace_id
ORDER BY trace_ms DESC, s.trace_id
LIMIT $limit
