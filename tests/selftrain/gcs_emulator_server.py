"""gcp-storage-emulator's command line (`python gcs_emulator_server.py start --host=127.0.0.1 --port=N ...`),
with one of its gaps filled: media downloads carry the object's `x-goog-generation` (and metageneration)
header, as GCS's do.

tensorstore (orbax's array storage) takes an object's generation from that header. Without it, it records
generation 0, and a later conditional read of the object fails with "Malformed StorageGeneration". On the
plain emulator, saving a training checkpoint (parameters and optimizer moments: a few dozen arrays in one
OCDBT database) fails so: `gcs_orbax_worker.py` 3 times of 3, and the smoke self-training run at its first
checkpoint; a few arrays alone were saved fine. The emulator ignores generation preconditions
(`ifGenerationMatch`, `ifGenerationNotMatch`) as well; with one writer per object that changes nothing the
tests look at."""

from __future__ import annotations

import sys

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.handlers import objects

_download = objects.download


def download(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    if response.status.value in (200, 206):
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", 1))


# `objects.get` (`?alt=media`) calls the module's `download`; the route table holds the function itself.
objects.download = download
server.HANDLERS = tuple((regex, {method: download if handler is _download else handler
                                 for method, handler in handlers.items()})
                        for regex, handlers in server.HANDLERS)

if __name__ == "__main__":
    sys.exit(main())
