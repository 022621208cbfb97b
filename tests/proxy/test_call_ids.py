"""Call ids (x-litellm-call-id, the spend log's request_id): random version-4 UUIDs, never repeated, not even
by a worker forked from a process that had made some."""
import os
import uuid

from proxy.pipeline.context import new_call_id


def test_call_ids_are_distinct_version_4_uuids():
    ids = [new_call_id() for _ in range(2000)]   # several batches of random bytes

    assert len(set(ids)) == len(ids)
    for value in ids[:300]:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)


def test_a_forked_child_does_not_repeat_its_parents_next_ids():
    new_call_id()   # the parent holds unused random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: its next ids, to the parent
        os.close(read)
        os.write(write, "\n".join(new_call_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)

    assert not set(child) & {new_call_id() for _ in range(5)}
