"""TransformerLens compatibility: HF tokenizer wrapper, ActivationCache shorthand, momentum patching."""
