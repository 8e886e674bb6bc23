-- Hourly weather per origin airport; the key flights join on is (origin, time_hour).
SELECT origin, time_hour, temp, dewp, humid, wind_dir, wind_speed, wind_gust, precip, pressure, visib
FROM {{ ref('raw_weather') }}
