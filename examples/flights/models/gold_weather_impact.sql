-- Departure delays by the weather at the origin in the hour of departure.
SELECT
  CASE
    WHEN w.time_hour IS NULL THEN 'unknown'
    WHEN w.precip > 0.1 THEN 'heavy rain or snow'
    WHEN w.precip > 0 THEN 'light rain or snow'
    WHEN w.visib < 3 THEN 'low visibility'
    WHEN w.wind_speed > 25 THEN 'strong wind'
    ELSE 'clear'
  END AS conditions,
  COUNT(*) AS flights,
  ROUND(CAST(AVG(f.dep_delay) AS NUMERIC), 2) AS avg_dep_delay,
  ROUND(CAST(AVG(CASE WHEN f.dep_delay > 15 THEN 1.0 ELSE 0.0 END) AS NUMERIC), 4) AS delayed_share
FROM {{ ref('silver_flights') }} f
LEFT JOIN {{ ref('silver_weather') }} w ON w.origin = f.origin AND w.time_hour = f.time_hour
GROUP BY 1
