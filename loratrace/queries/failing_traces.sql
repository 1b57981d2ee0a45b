-- name: failing_traces
-- answers: The most recent failed generations (status ERROR) of one adapter in a window, with the error type and message, to open the traces behind an error spike.
-- params: adapter (text), since (timestamp, optional), until (timestamp, optional), limit (integer, default 50)
SELECT trace_id, span_id, start_time, adapter_id, cohort, error_type, status_message, duration_ns / 1e6 AS duration_ms
FROM generations
WHERE adapter_name = $adapter
  AND status_code = 'ERROR'
  AND start_time >= coalesce($since::TIMESTAMP, '-infinity'::TIMESTAMP)
  AND start_time < coalesce($until::TIMESTAMP, 'infinity'::TIMESTAMP)
ORDER BY start_time DESC, trace_id, span_id
LIMIT $limit
