-- Exports a query result to a Parquet file with COPY … TO, then reads the file back.
-- Needs: backend pg (see dataknobs.toml); writes dkx_export.parquet in the working folder.
DROP TABLE IF EXISTS pg.dkx_sales;
CREATE TABLE pg.dkx_sales (id INT PRIMARY KEY, region TEXT, amount DOUBLE PRECISION);
INSERT INTO pg.dkx_sales VALUES (1, 'north', 10.5), (2, 'south', 4.0), (3, 'north', 7.25);

COPY (SELECT region, sum(amount) AS total FROM pg.dkx_sales GROUP BY region ORDER BY region)
TO 'dkx_export.parquet' STORED AS PARQUET;

SELECT * FROM 'dkx_export.parquet' ORDER BY region;
