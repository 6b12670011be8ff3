-- Moves a table from the S3 lake into PostgreSQL with INSERT … SELECT, then checks that both
-- sides hold the same rows.
-- Needs: backends lake, pg (see dataknobs.toml).
DROP TABLE IF EXISTS lake.events;
DROP TABLE IF EXISTS pg.dkx_events;

CREATE TABLE lake.events AS
SELECT value AS id, 'event-' || CAST(value AS TEXT) AS name, value % 7 AS kind
FROM generate_series(1, 5000);

CREATE TABLE pg.dkx_events (id BIGINT PRIMARY KEY, name TEXT, kind BIGINT);
INSERT INTO pg.dkx_events SELECT id, name, kind FROM lake.events;

SELECT (SELECT count(*) FROM pg.dkx_events) AS rows_in_pg,
       (SELECT count(*) FROM lake.events) AS rows_in_lake,
       (SELECT count(*) FROM (SELECT * FROM pg.dkx_events EXCEPT SELECT * FROM lake.events)) AS differing;
