-- One query over four stores: customers in PostgreSQL, reviews in Elasticsearch/OpenSearch,
-- orders as Parquet in S3 and regions in a CSV file.
-- Needs: backends pg, search, lake, files (see dataknobs.toml).
DROP TABLE IF EXISTS pg.dkx_customers;
DROP TABLE IF EXISTS search.reviews;
DROP TABLE IF EXISTS lake.orders;
DROP TABLE IF EXISTS files.regions;

CREATE TABLE pg.dkx_customers (id INT PRIMARY KEY, name TEXT, region TEXT);
INSERT INTO pg.dkx_customers VALUES (1, 'Ada', 'north'), (2, 'Brook', 'south'), (3, 'Cy', 'north');

CREATE TABLE search.reviews (id INT PRIMARY KEY, customer_id INT, stars INT, body TEXT);
INSERT INTO search.reviews VALUES
  (10, 1, 5, 'fast delivery, great coffee'),
  (11, 2, 2, 'coffee arrived cold'),
  (12, 3, 4, 'good tea');

CREATE TABLE lake.orders AS
SELECT * FROM (VALUES (100, 1, 30.0), (101, 1, 12.5), (102, 2, 8.0), (103, 3, 20.0)) o(id, customer_id, amount);

CREATE TABLE files.regions AS
SELECT * FROM (VALUES ('north', 'Nordic team'), ('south', 'Southern team')) r(region, team);

SELECT c.name, r.team, count(DISTINCT o.id) AS orders, sum(o.amount) AS spent, max(v.stars) AS best_review
FROM pg.dkx_customers c
JOIN files.regions r ON r.region = c.region
JOIN lake.orders o ON o.customer_id = c.id
JOIN search.reviews v ON v.customer_id = c.id
GROUP BY c.name, r.team
ORDER BY c.name;
