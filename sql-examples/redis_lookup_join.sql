-- Prices kept in Redis as a lookup table, joined with orders in PostgreSQL.
-- Needs: backends cache, pg (see dataknobs.toml).
DROP TABLE IF EXISTS cache.prices;
DROP TABLE IF EXISTS pg.dkx_order_lines;

CREATE TABLE cache.prices (sku TEXT PRIMARY KEY, price DOUBLE);
INSERT INTO cache.prices VALUES ('apple', 0.5), ('pear', 0.75), ('plum', 1.25);
CREATE TABLE pg.dkx_order_lines (id INT PRIMARY KEY, sku TEXT, qty INT);
INSERT INTO pg.dkx_order_lines VALUES (1, 'apple', 4), (2, 'plum', 2), (3, 'apple', 1), (4, 'kiwi', 3);

SELECT l.sku, sum(l.qty) AS qty, p.price, sum(l.qty) * p.price AS total
FROM pg.dkx_order_lines l LEFT JOIN cache.prices p ON p.sku = l.sku
GROUP BY l.sku, p.price
ORDER BY l.sku;
