DROP TABLE node_status;
DROP TABLE replication_jobs;
DROP TABLE write_intents;
DROP TABLE repository_assignments;
DROP TABLE storage_repositories;
DROP TABLE repositories;
DROP TABLE hello_world;
