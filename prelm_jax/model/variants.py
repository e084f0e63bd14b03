"""Model sizes by name: the one table of encoder dimensions.

Sizes follow the BERT paper (base, large) and Turc et al. 2019's compact BERTs
(tiny, mini, small, medium).
"""

VARIANTS = {
    'tiny': dict(num_layers=2, hidden_size=128, num_heads=2, mlp_dim=512),
    'mini': dict(num_layers=4, hidden_size=256, num_heads=4, mlp_dim=1024),
    'small': dict(num_layers=4, hidden_size=512, num_heads=8, mlp_dim=2048),
    'medium': dict(num_layers=8, hidden_size=512, num_heads=8, mlp_dim=2048),
    'base': dict(num_layers=12, hidden_size=768, num_heads=12, mlp_dim=3072),
    'large': dict(num_layers=24, hidden_size=1024, num_heads=16, mlp_dim=4096),
}


def get(name):
  """Returns the dimensions of a named variant.

  Args:
    name: a key of VARIANTS, e.g. 'base'.

  Returns:
    A new dict with num_layers, hidden_size, num_heads and mlp_dim (a copy, so
    callers may modify it).

  Raises:
    ValueError: for an unknown name; the message lists the known ones.
  """
  if name not in VARIANTS:
    raise ValueError(
        f'Unknown model variant {name!r}; known: {", ".join(VARIANTS)}.')
  return dict(VARIANTS[name])
