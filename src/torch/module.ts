// The methods every exported torch module has besides forward: graphc's checkpoints read and
// written with torch alone (the safetensors header parsed with json, the data read with
// torch.frombuffer and written through a torch view of a bytearray), keyed by graphc's names,
// in the layout graphc's saveParams writes (header padded with spaces to 8 bytes), so that a
// checkpoint goes graphc → PyTorch → graphc unchanged.

/** The Python source of the methods, indented for the class body. */
export function moduleMethods(): string[] {
  return `    def _device(self):
        for t in self.parameters():
            return t.device
        return torch.device("cpu")

    def graphc_tensors(self):
        """The params, then the buffers, by graphc's names (the order of graphc's checkpoints)."""
        out = {}
        for name in self.GRAPHC_PARAMS + self.GRAPHC_BUFFERS:
            out[name] = getattr(self, self.GRAPHC_NAMES[name])
        return out

    def load_safetensors(self, path):
        """Reads a graphc checkpoint (safetensors, graphc's names): every param, and the buffers it holds."""
        with open(path, "rb") as f:
            self._load_bytes(f.read(), path)

    def _load_bytes(self, data, where):
        if len(data) < 8:
            raise ValueError(f"{where}: not a safetensors file ({len(data)} bytes)")
        n = int.from_bytes(data[:8], "little")
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
        meta = header.pop("__metadata__", None)
        body = memoryview(data)[8 + n:]
        tensors = self.graphc_tensors()
        for name in header:
            if name not in tensors:
                raise ValueError(f"{where}: '{name}' is neither a param nor a buffer of the model; its params are: {', '.join(self.GRAPHC_PARAMS)}; load a checkpoint of this model")
        missing = [name for name in self.GRAPHC_PARAMS if name not in header]
        if missing:
            raise ValueError(f"{where}: no value for the param(s) {', '.join(missing)}; save every param (graphc's saveParams(file, params), or save_safetensors)")
        with torch.no_grad():
            for name, e in header.items():
                t = tensors[name]
                if e["dtype"] != "F32" or list(e["shape"]) != list(t.shape):
                    raise ValueError(f"{where}: '{name}' is {e['dtype']}{list(e['shape'])}, but the model's is F32{list(t.shape)}; load a checkpoint of this model")
                begin, end = e["data_offsets"]
                if end - begin != 4 * t.numel():
                    raise ValueError(f"{where}: '{name}' has {end - begin} bytes of data, but {4 * t.numel()} are needed")
                if end > begin:
                    values = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32)
                    t.copy_(values.reshape(t.shape))
        self._safetensors_metadata = meta

    def save_safetensors(self, path, metadata=None):
        """Writes the params and buffers as a graphc checkpoint (safetensors, graphc's names)."""
        header = {}
        meta = metadata if metadata is not None else self._safetensors_metadata
        if meta is not None:
            header["__metadata__"] = dict(meta)
        tensors = [(name, t.detach().to("cpu", torch.float32).contiguous()) for name, t in self.graphc_tensors().items()]
        offset = 0
        for name, t in tensors:
            header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + 4 * t.numel()]}
            offset += 4 * t.numel()
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        text += b" " * ((8 - len(text) % 8) % 8)
        data = bytearray(offset)
        if offset:
            view = torch.frombuffer(data, dtype=torch.uint8)
            p = 0
            for name, t in tensors:
                k = 4 * t.numel()
                if k:
                    view[p:p + k].copy_(t.reshape(-1).view(torch.uint8))
                p += k
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            f.write(data)
        os.replace(tmp, path)`.split('\n');
}
