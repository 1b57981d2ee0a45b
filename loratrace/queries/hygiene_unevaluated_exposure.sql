-- name: hygiene_unevaluated_exposure
-- answers: Which production cohorts does an adapter id serve with no golden-set replay for that cohort, or with far fewer replayed examples than its share of the traffic?
-- params: since (TIMESTAMP UTC or NULL for all), until (TIMESTAMP UTC or NULL for all), min_share_ratio (DOUBLE: flag a cohort whose share of replayed examples is below this times its share of traffic)
-- Generations are read from `spans` by operation (what the `generations` view selects, without the view's
-- evaluation counts, which cost four times the query's own work on a large store).
-- Production traffic is counted in the time range; replay (generations with example_id) over the whole store.
WITH production AS (
    SELECT adapter_name, adapter_id, coalesce(cohort, '(none)') AS cohort, count(*) AS production_generations
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content')
      AND adapter_id IS NOT NULL AND example_id IS NULL
      AND (CAST($since AS TIMESTAMP) IS NULL OR start_time >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR start_time < CAST($until AS TIMESTAMP))
    GROUP BY ALL
),
replay AS (
    SELECT adapter_id, coalesce(cohort, '(none)') AS cohort, count(DISTINCT example_id) AS replayed_examples
    FROM spans
    WHERE operation_name IN ('text_completion', 'chat', 'generate_content')
      AND adapter_id IS NOT NULL AND example_id IS NOT NULL
    GROUP BY ALL
),
shares AS (
    SELECT p.adapter_name, p.adapter_id, p.cohort, p.production_generations,
           p.production_generations / sum(p.production_generations) OVER (PARTITION BY p.adapter_id) AS traffic_share,
           coalesce(r.replayed_examples, 0) AS replayed_examples,
           coalesce(t.replayed_examples, 0) AS adapter_replayed_examples
    FROM production AS p
    LEFT JOIN replay AS r USING (adapter_id, cohort)
    LEFT JOIN (SELECT adapter_id, sum(replayed_examples) AS replayed_examples FROM replay GROUP BY 1) AS t USING (adapter_id)
)
SELECT adapter_name, adapter_id, cohort, production_generations,
       round(traffic_share, 4) AS traffic_share,
       replayed_examples,
       round(coalesce(replayed_examples / nullif(adapter_replayed_examples, 0), 0), 4) AS replay_share
FROM shares
WHERE replayed_examples = 0
   OR replayed_examples / adapter_replayed_examples < $min_share_ratio * traffic_share
ORDER BY adapter_name, adapter_id, cohort
