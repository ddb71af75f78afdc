DROP FUNCTION IF EXISTS observatory_maintain_signals(integer, integer, interval, integer);
DROP FUNCTION IF EXISTS observatory_ensure_signal_partitions(date, date);
DROP TABLE IF EXISTS metric_points;
DROP TABLE IF EXISTS logs;
