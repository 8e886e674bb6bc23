-- Delays per carrier and month: what an airline dashboard plots first.
SELECT
  carrier || '-' || CAST(year AS TEXT) || '-' || CASE WHEN month < 10 THEN '0' ELSE '' END || CAST(month AS TEXT) AS carrier_month,
  carrier,
  MAX(airline) AS airline,
  year,
  month,
  COUNT(*) AS flights,
  ROUND(CAST(AVG(dep_delay) AS NUMERIC), 2) AS avg_dep_delay,
  ROUND(CAST(AVG(arr_delay) AS NUMERIC), 2) AS avg_arr_delay,
  SUM(CASE WHEN arr_delay > 15 THEN 1 ELSE 0 END) AS late_arrivals
FROM {{ ref('silver_flights') }}
GROUP BY carrier, year, month
