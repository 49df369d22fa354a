-- Proactive failover looks up the repositories whose primary is on a
-- storage that just failed, every health-check round while it is down.
CREATE INDEX repositories_primary ON repositories (virtual_storage, "primary");
