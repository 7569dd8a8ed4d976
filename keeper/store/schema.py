"""Versioned schema. Each migration moves the database one version up, in one transaction."""

from __future__ import annotations

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    -- Recent headers, to detect reorgs by parent hash. The sync cursor is the highest row.
    CREATE TABLE blocks (
        number INTEGER PRIMARY KEY,
        hash BLOB NOT NULL,
        parent_hash BLOB NOT NULL,
        timestamp INTEGER NOT NULL
    );

    -- Every KeeperRegistry / TaskManager event followed, as decoded JSON. Jobs, keepers and
    -- epochs below are folds of these rows, rebuilt after a reorg from what survived.
    CREATE TABLE events (
        block_number INTEGER NOT NULL,
        log_index INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        tx_hash BLOB NOT NULL,
        name TEXT NOT NULL,
        job_id INTEGER,
        args TEXT NOT NULL,
        PRIMARY KEY (block_number, log_index)
    );
    CREATE INDEX events_job ON events (job_id, block_number, log_index);

    CREATE TABLE jobs (job_id INTEGER PRIMARY KEY, status INTEGER NOT NULL, data TEXT NOT NULL);

    CREATE TABLE keepers (address TEXT PRIMARY KEY, endpoint TEXT NOT NULL, data TEXT NOT NULL);

    CREATE TABLE epochs (
        epoch INTEGER PRIMARY KEY,
        seed BLOB NOT NULL,
        count INTEGER NOT NULL,
        start_block INTEGER NOT NULL
    );
    CREATE TABLE quorums (
        epoch INTEGER NOT NULL,
        quorum INTEGER NOT NULL,
        members TEXT NOT NULL,
        PRIMARY KEY (epoch, quorum)
    );

    -- Logs matching Event jobs' filters, with the block they came in (rolled back on reorg).
    CREATE TABLE job_logs (
        job_id INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        block_number INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        PRIMARY KEY (job_id, cursor)
    );

    -- Every report this node signed, stored BEFORE the signature leaves the node. Never rolled
    -- back: it is what keeps the node from signing a conflicting result, restarts included.
    CREATE TABLE signatures (
        job_id INTEGER NOT NULL,
        round INTEGER NOT NULL,
        check_block INTEGER NOT NULL,
        check_block_hash BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        payload_hash BLOB NOT NULL,
        digest BLOB NOT NULL,
        report TEXT NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (job_id, round, check_block, check_block_hash, digest)
    );

    -- Rounds this node worked on: when it first saw them due, what it proposed as leader,
    -- the signatures it collected, the transaction it sent.
    CREATE TABLE rounds (
        job_id INTEGER NOT NULL,
        round INTEGER NOT NULL,
        status TEXT NOT NULL,
        due_block INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (job_id, round)
    );

    -- Transactions signed by this node, persisted before broadcast so a restart re-sends the
    -- very same transaction (same nonce and hash) instead of a new one.
    CREATE TABLE pending_txs (
        tx_hash BLOB PRIMARY KEY,
        nonce INTEGER NOT NULL,
        raw BLOB NOT NULL,
        purpose TEXT NOT NULL,
        max_fee INTEGER NOT NULL,
        priority_fee INTEGER NOT NULL,
        sent_block INTEGER NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX pending_txs_nonce ON pending_txs (nonce);
    """,
    # v2, a bounded store: the state folded up to a snapshot height trails the head, events
    # at or below it are folded into it and deleted, counters replace counting events, and
    # what pruning deletes from rounds and signatures is counted. A v1 store has no snapshot
    # yet (its events are all above it); its counters start from the events it holds.
    2: """
    CREATE TABLE snap_jobs (
        job_id INTEGER PRIMARY KEY, status INTEGER NOT NULL, data TEXT NOT NULL
    );
    CREATE TABLE snap_keepers (
        address TEXT PRIMARY KEY, endpoint TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE TABLE snap_epochs (
        epoch INTEGER PRIMARY KEY,
        seed BLOB NOT NULL,
        count INTEGER NOT NULL,
        start_block INTEGER NOT NULL
    );
    CREATE TABLE snap_quorums (
        epoch INTEGER NOT NULL,
        quorum INTEGER NOT NULL,
        members TEXT NOT NULL,
        PRIMARY KEY (epoch, quorum)
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE snap_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters (name, value)
        SELECT 'executions', COUNT(*) FROM events WHERE name = 'JobExecuted';
    INSERT INTO counters (name, value)
        SELECT 'successes', COALESCE(SUM(json_extract(args, '$.success') = 1), 0)
        FROM events WHERE name = 'JobExecuted';
    -- Rows pruning deleted, by what they were ('signatures', 'rounds:<status>').
    CREATE TABLE pruned (what TEXT PRIMARY KEY, count INTEGER NOT NULL);
    CREATE INDEX signatures_check_block ON signatures (check_block);
    """,
}
