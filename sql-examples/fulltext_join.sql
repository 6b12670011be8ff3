-- Full-text search in Elasticsearch/OpenSearch joined with relational data in PostgreSQL:
-- match() is answered by the search server; the join runs in dataknobs.
-- Needs: backends search, pg (see dataknobs.toml).
DROP TABLE IF EXISTS search.articles;
DROP TABLE IF EXISTS pg.dkx_authors;

CREATE TABLE search.articles (id INT PRIMARY KEY, author_id INT, title TEXT, body TEXT);
INSERT INTO search.articles VALUES
  (1, 1, 'Query engines', 'DataFusion plans SQL over Arrow in Rust'),
  (2, 2, 'Gardening', 'Tomatoes like sun and water'),
  (3, 1, 'Search', 'Full text search with inverted indexes in Rust');
CREATE TABLE pg.dkx_authors (id INT PRIMARY KEY, name TEXT);
INSERT INTO pg.dkx_authors VALUES (1, 'Grace'), (2, 'Linus');

SELECT a.title, w.name AS author
FROM search.articles a JOIN pg.dkx_authors w ON w.id = a.author_id
WHERE match(a.body, 'rust')
ORDER BY a.id;
