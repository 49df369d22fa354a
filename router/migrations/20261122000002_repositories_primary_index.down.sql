DROP INDEX repositories_primary;
