"""A numpy forward pass of a BERT encoder (all-MiniLM-L6-v2), enough to distil static vectors."""

import json
import os

import numpy as np
from safetensors.numpy import load_file


class Bert:
    def __init__(self, model_dir):
        self.cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.w = load_file(os.path.join(model_dir, "model.safetensors"))
        self.heads = self.cfg["num_attention_heads"]
        self.eps = self.cfg["layer_norm_eps"]

    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + np.float32(self.eps)) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x, name):
        # 2-D matmul against a contiguous transposed weight: one BLAS call, not one per row.
        wt = self.w.get(name + ".weight_t")
        if wt is None:
            wt = self.w[name + ".weight_t"] = np.ascontiguousarray(self.w[name + ".weight"].T)
        y = x.reshape(-1, x.shape[-1]) @ wt + self.w[name + ".bias"]
        return y.reshape(*x.shape[:-1], -1)

    def forward(self, ids, mask):
        """ids, mask: (batch, seq) int arrays. Returns last hidden states (batch, seq, hidden)."""
        w = self.w
        b, n = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        h = self.heads
        d = x.shape[-1] // h
        bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * -1e9
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q = self._dense(x, p + "attention.self.query").reshape(b, n, h, d).transpose(0, 2, 1, 3)
            k = self._dense(x, p + "attention.self.key").reshape(b, n, h, d).transpose(0, 2, 1, 3)
            v = self._dense(x, p + "attention.self.value").reshape(b, n, h, d).transpose(0, 2, 1, 3)
            a = q @ k.transpose(0, 1, 3, 2) / float(np.sqrt(d)) + bias
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, h * d)
            x = self._ln(x + self._dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            f = self._dense(x, p + "intermediate.dense")
            f = 0.5 * f * (1.0 + np.tanh(float(np.sqrt(2 / np.pi)) * (f + 0.044715 * f**3)))  # gelu (tanh approx)
            x = self._ln(x + self._dense(f, p + "output.dense"), p + "output.LayerNorm")
        return x

    def embed(self, ids_list):
        """Sentence embeddings (mean pooling over the mask, L2-normalised) of tokenised inputs."""
        n = max(len(t) for t in ids_list)
        ids = np.zeros((len(ids_list), n), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, t in enumerate(ids_list):
            ids[i, : len(t)] = t
            mask[i, : len(t)] = 1
        x = self.forward(ids, mask)
        m = mask[..., None].astype(np.float32)
        e = (x * m).sum(1) / m.sum(1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)
