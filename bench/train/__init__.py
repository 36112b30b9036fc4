"""How a run trains: the architecture registry, heads, pretrained weights, the Learner factory, the prepare step
that resolves a config into data + split + run id, the two-phase protocol and the index row it records."""
