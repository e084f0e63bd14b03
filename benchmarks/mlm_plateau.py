"""Is the Transformer's slow start in MLM a bug of prelm's or a property of the model?

Trains three encoders on the same batches with the same optimizer and MLM loss alone,
and prints the masked-token accuracy of every 100 steps:
  prelm     prelm's BertForPreTraining (the Transformer of bert_tiny_books)
  plain     an independent post-LN BERT written below in plain jax (same shapes and
            initialisation: truncated normal, std 0.02); given prelm's weights it
            gives prelm's logits (within 3e-7, checked while writing this)
  lstm      prelm's BiLSTM encoder (lstm_tiny_books' architecture)

The batches are bert_tiny_books' (Gutenberg + WikiText-2, 64 x 128, 15% masked), read
from a run of it (--run; `benchmarks/finetune_study.py` makes one). Dropout is off
(--set model.dropout_rate=0.1 turns it on).

  python benchmarks/mlm_plateau.py --run runs/study/pretrain/bert_tiny_books
  python benchmarks/mlm_plateau.py --run ... --models prelm --set model.alibi=True \
      --set model.num_heads=8
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prelm_jax import optim
from prelm_jax import registry
from prelm_jax import tasks
from prelm_jax import workdir as workdir_lib
from prelm_jax.model import build_model


def plain_bert(cfg, vocab_size, seq_len, key):
  """(init params, forward) of a post-LN BERT with tied MLM output, in plain jax."""
  h, heads, layers = cfg.hidden_size, cfg.num_heads, cfg.num_layers
  init = jax.nn.initializers.truncated_normal(cfg.initializer_range)
  keys = iter(jax.random.split(key, 8 + 8 * layers))
  dense = lambda n_in, n_out: dict(w=init(next(keys), (n_in, n_out)), b=jnp.zeros(n_out))
  norm = lambda: dict(g=jnp.ones(h), b=jnp.zeros(h))
  params = dict(
      words=init(next(keys), (vocab_size, h)), positions=init(next(keys), (seq_len, h)),
      types=init(next(keys), (2, h)), norm=norm(), transform=dense(h, h),
      transform_norm=norm(), output_bias=jnp.zeros(vocab_size),
      layers=[dict(q=dense(h, h), k=dense(h, h), v=dense(h, h), o=dense(h, h), norm1=norm(),
                   wi=dense(h, cfg.mlp_dim), wo=dense(cfg.mlp_dim, h), norm2=norm())
              for _ in range(layers)])

  def layer_norm(p, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + cfg.layer_norm_eps) * p['g'] + p['b']

  def apply(p, x):
    return x @ p['w'] + p['b']

  def forward(p, ids, types, mask, positions):
    b, length = ids.shape
    split = lambda x: x.reshape(b, length, heads, h // heads)
    x = layer_norm(p['norm'], p['words'][ids] + p['positions'][None, :length]
                   + p['types'][types])
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, -1e9)
    for l in p['layers']:
      q, k, v = (split(apply(l[n], x)) for n in 'qkv')
      scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(h // heads) + bias
      attended = jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(scores, -1), v)
      x = layer_norm(l['norm1'], x + apply(l['o'], attended.reshape(b, length, h)))
      ffn = apply(l['wo'], jax.nn.gelu(apply(l['wi'], x), approximate=False))
      x = layer_norm(l['norm2'], x + ffn)
    x = jnp.take_along_axis(x, positions[..., None], 1)
    x = layer_norm(p['transform_norm'],
                   jax.nn.gelu(apply(p['transform'], x), approximate=False))
    return x @ p['words'].T + p['output_bias']

  return params, forward


def prelm_model(cfg, vocab_size, batch, key):
  model = build_model(cfg, vocab_size)
  params = model.init(key, *(batch[k] for k in INPUTS))['params']
  params = jax.tree.map(lambda x: getattr(x, 'value', x), params,
                        is_leaf=lambda x: hasattr(x, 'value'))
  return params, lambda p, *inputs: model.apply({'params': p}, *inputs)[0]


INPUTS = ('input_ids', 'token_type_ids', 'attention_mask', 'mlm_positions')


def corpus_batches(run):
  config = registry.load('bert_tiny_books')
  task = tasks.get(config)
  source = task.pipelines(task.prepare_data(workdir_lib.inspect(run)),
                          process_index=0, process_count=1).train
  return config, config.data.vocab_size, lambda step: source.batch(step)


def train(forward, params, optimizer, batches, steps):
  """MLM accuracy of each block of 100 training steps."""
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    def loss_fn(p):
      logits = forward(p, *(batch[k] for k in INPUTS))
      w = batch['mlm_weights']
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['mlm_ids'])
      hits = (logits.argmax(-1) == batch['mlm_ids']) * w
      return (loss * w).sum() / w.sum(), hits.sum() / w.sum()
    (_, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, accuracy

  accuracies = []
  for i in range(steps):
    batch = {k: jnp.asarray(v) for k, v in batches(i).items()}
    params, opt_state, accuracy = step(params, opt_state, batch)
    accuracies.append(float(accuracy))
  return [round(float(np.mean(accuracies[i:i + 100])), 3) for i in range(0, steps, 100)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--run', default='runs/study/pretrain/bert_tiny_books',
                      help='a bert_tiny_books run whose prepared corpus and vocab to use')
  parser.add_argument('--steps', type=int, default=400)
  parser.add_argument('--models', default='prelm,plain,lstm')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='a config override, e.g. model.alibi=True or '
                           'optim.learning_rate=3e-3 (repeatable)')
  parser.add_argument('--out', default='', help='also write the results here (JSON)')
  args = parser.parse_args()
  config, vocab_size, batches = corpus_batches(args.run)
  config.optim.warmup_steps = 60
  config.model.update(dropout_rate=0.0, attention_dropout_rate=0.0, vocab_pad_multiple=1)
  for setting in args.set:
    key, value = setting.split('=', 1)
    section, name = key.split('.')
    config[section][name] = type(config[section][name])(
        value == 'True' if isinstance(config[section][name], bool) else float(value)
        if isinstance(config[section][name], float) else value)
  optimizer, _ = optim.make_optimizer(config.optim, args.steps)
  first = {k: jnp.asarray(v) for k, v in batches(0).items()}
  results = {}
  for name in args.models.split(','):
    start = time.time()
    key = jax.random.key(0)
    if name == 'plain':
      params, forward = plain_bert(config.model, vocab_size, first['input_ids'].shape[1], key)
    else:
      cfg = config.model.copy_and_resolve_references()
      cfg.encoder = 'lstm' if name == 'lstm' else 'transformer'
      params, forward = prelm_model(cfg, vocab_size, first, key)
    results[name] = train(forward, params, optimizer, batches, args.steps)
    print(f'{name:6s} MLM accuracy per 100 steps: {results[name]} '
          f'({time.time() - start:.0f} s)', flush=True)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(dict(vars(args), accuracy_per_100_steps=results), f, indent=1)


if __name__ == '__main__':
  main()
