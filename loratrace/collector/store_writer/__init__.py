"""The store writer: a separate process that tails the write-ahead log, decodes, and writes Parquet segments.

It runs apart from the receivers so decoding (the expensive part) uses the second core and never delays an
acknowledgement. Exactly-once, after any crash:

* a flush writes its segments, named after the log offset they cover up to, and *then* records that offset in
  ``state/checkpoint.json`` (atomic rename);
* on start, segments named past the checkpoint are leftovers of an interrupted flush and are deleted, and the
  log is replayed from the checkpoint;
* a span that a client sent again (a retry after a lost response) is dropped when its trace id + span id was
  already written recently (an in-memory window, reloaded from recent segments on start), and compaction drops
  any older duplicate.

One job per module:

* ``process``: starting, stopping and supervising the store writer process;
* ``settings``: its settings and the counters it shares with the collector;
* ``checkpoint``: the checkpoint, and recovery from an interrupted flush;
* ``duplicates``: the duplicate window;
* ``read_loop``: reading and decoding the log into batches;
* ``segment_writing``: writing each batch's segments then its checkpoint, on a thread of its own; compaction.
"""
