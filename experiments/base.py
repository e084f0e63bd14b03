"""Base config: every key a run may use, with BERT's defaults. Experiments give deltas.

  prelm train --config experiments/base.py --workdir /tmp/run
"""
import ml_collections

from prelm_jax import sharding


def get_config(arg=None):
  del arg
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.task = "pretrain"               # pretrain | classify | tag: see prelm_jax/tasks/
  # Fine-tuning: a prelm run directory to start from; its encoder architecture and
  # vocab.txt are adopted, and with init_params its encoder weights (latest checkpoint,
  # or init_step). "": from scratch, with a vocabulary trained on the training file.
  config.init_from = ""
  config.init_step = -1
  config.init_params = True

  config.model = ml_collections.ConfigDict()
  config.model.encoder = "transformer"   # transformer | lstm (the baseline)
  config.model.num_layers = 12
  config.model.hidden_size = 768
  config.model.num_heads = 12
  config.model.mlp_dim = 3072
  config.model.max_position_embeddings = 512
  config.model.type_vocab_size = 2
  config.model.dropout_rate = 0.1
  config.model.attention_dropout_rate = 0.1
  config.model.pre_ln = False            # BERT is post-LN
  config.model.initializer_range = 0.02
  config.model.layer_norm_eps = 1e-12
  config.model.dtype = "float32"         # compute dtype
  config.model.param_dtype = "float32"
  # Activation rematerialisation per Transformer layer: none | full | dots_saveable |
  # dots_with_no_batch_dims_saveable | nothing_saveable (jax.checkpoint_policies).
  config.model.remat_policy = "none"
  # nn.scan over the layers: one compiled layer (faster compiles for deep models);
  # params get a stacked leading "layers" axis, so checkpoints differ from unscanned.
  config.model.scan_layers = False
  # Embedding rows padded to a multiple of this, so the vocabulary splits evenly over
  # tensor-parallel devices (2, 4, 8, ... up to 64) whatever size WordPiece trained to.
  config.model.vocab_pad_multiple = 64
  # BERT ties the MLM output layer to the input word embeddings; False gives the
  # head an output matrix of its own (decoupled embeddings; see model/heads.py).
  config.model.tie_word_embeddings = True
  # ALiBi: a fixed per-head penalty on attention to distant tokens, on top of the
  # learned positions (model/layers.py alibi_bias).
  config.model.alibi = False
  # Feed-forward: gelu (BERT) | geglu (gelu(gate) * value, Shazeer 2020; transformer only,
  # H * mlp_dim + mlp_dim more params per layer; not exportable to Hugging Face BERT).
  config.model.mlp_activation = "gelu"

  config.data = ml_collections.ConfigDict()
  config.data.dataset = "pydocs"         # a TFDS builder name: pydocs | text_files | ...
  config.data.tfds_data_dir = ""         # "" -> TFDS default (~/tensorflow_datasets)
  # dataset=text_files only (prelm_jax/data/text_files.py): your files, as one glob or
  # comma-separated globs ("~" expanded, "**" recursive, relative to the working
  # directory). Any extension is read as UTF-8 text; names ending in .gz are unzipped.
  config.data.paths = ""
  # "blank_lines": blank lines end paragraphs, and a file's paragraphs are grouped into
  # documents of >= 64 sentences; "file": one document per file.
  config.data.documents = "blank_lines"
  # Bytes that are not UTF-8: "error" stops, naming the file and byte offset;
  # "replace" reads each bad sequence as U+FFFD and logs how many there were.
  config.data.bad_utf8 = "error"
  # Several datasets, each example drawn from one by weight (data/mixture.py), e.g.
  # "wikipedia/20230601.en:0.8,bookcorpus:0.2"; "" -> config.data.dataset alone.
  config.data.mixture = ""
  # A catalogue dataset's text feature (wikipedia, c4, bookcorpus: "text").
  config.data.text_field = "text"
  # Prepared corpora (data/prepare.py): "" -> <tfds_data_dir>/prelm_prepared. Reused
  # by every run with the same corpus, vocabulary and max_seq_len.
  config.data.prepared_dir = ""
  config.data.prepare_workers = 1        # processes that prepare units in parallel
  config.data.input_threads = 1          # threads building training batches ahead
  config.data.prepare_unit_docs = 2000   # TFDS datasets: documents per unit (a shard)
  config.data.prepare_unit_bytes = 16_000_000  # text_files: bytes of files per unit
  # The vocabulary is trained on the first this-many bytes of the train split (TFDS's
  # order is a shuffle); 0: all of it.
  config.data.vocab_sample_bytes = 200_000_000
  config.data.vocab_size = 30522
  config.data.lowercase = True
  config.data.max_seq_len = 128
  config.data.short_seq_prob = 0.1       # BERT: sometimes use a shorter target length
  # The sentence-pair objective: nsp (BERT: B follows A, or comes from another
  # document) | sop (ALBERT: A and B in order or swapped) | none (MLM only: no head).
  config.data.sentence_objective = "nsp"
  config.data.nsp_random_prob = 0.5      # P(segment B comes from another document)
  config.data.mask_prob = 0.15
  config.data.mask_token_prob = 0.8      # of the selected: -> [MASK]
  config.data.random_token_prob = 0.1    # of the selected: -> random token (rest kept)
  config.data.max_predictions_per_seq = 20
  # True: mask whole words (a piece and its "##" pieces) together; mask_prob then
  # counts the tokens those words cover (BERT's --do_whole_word_mask).
  config.data.whole_word_masking = False
  # True: pack several short sentence pairs into each row of max_seq_len tokens, each
  # attending only to itself (less padding, more tokens per step; transformer only).
  # A packed row holds up to max_pairs_per_row pairs, each with its own NSP/SOP label.
  config.data.packing = False
  config.data.max_pairs_per_row = 8
  # Fine-tuning inputs (tasks/classify.py, tasks/tagging.py): a file, or a TFDS dataset
  # prepared in tfds_data_dir as tfds:NAME:SPLIT (tfds:glue/sst2:train,
  # tfds:conll2003:dev; never downloaded at run time: data/finetune_tfds.py). Columns
  # are then its features (text_columns, label_column; tag_column "" = ner), and a
  # ClassLabel label is read as its class name. Files and tfds: sources mix.
  config.data.train_path = ""
  config.data.dev_path = ""
  # Optional, labelled like dev: evaluated once at the end with the params of the best
  # dev evaluation (final_metrics.json's "test", predictions_test.tsv). Unlabelled
  # files (GLUE's test sets): `prelm predict`.
  config.data.test_path = ""
  # > 0: train on this many examples of train_path, a random subset drawn with
  # train_subset_seed (the same for every run seed): learning curves, low-data studies.
  config.data.train_examples = 0
  config.data.train_subset_seed = 0
  config.data.format = "table"           # table (.tsv/.csv/.jsonl) | conll | conllu
  config.data.text_columns = ("sentence",)  # one column, or two for a sentence pair
  # classify: True reads two text columns as [CLS] A [SEP] B [SEP] (RTE, MRPC, STS-B);
  # set by the pair experiments, so a single column given to them is refused.
  config.data.sentence_pair = False
  config.data.label_column = "label"
  config.data.labels = ()                # () = the labels seen in the training file
                                         # (sorted; tfds: the ClassLabel's order)
  config.data.delimiter = ""             # "" = from the extension (tab for .tsv)
  config.data.regression = False         # classify: a score (MSE) instead of classes
  config.data.tag_column = ""            # conll: column index ("" = last); conllu: field;
                                         # tfds: feature ("" = ner) or column index
  config.data.tag_scheme = "iob2"        # iob1 (converted to iob2) | iob2 | tags (POS)

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1000
  # > 0: the budget in epochs of the training file (fine-tuning); num_steps is then
  # computed, and the dev set is evaluated after every epoch.
  config.train.num_epochs = 0.0
  config.train.batch_size = 64
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 3
  config.train.eval_batch_size = 64
  # Micro-batches per step (split inside the jitted step; grads and metric sums add up,
  # so 4 x batch/4 equals one batch). batch_size / grad_accum_steps must be divisible
  # by the data-parallel size.
  config.train.grad_accum_steps = 1
  # Non-finite loss or gradient (prelm_jax/nonfinite.py): "stop" ends the run before
  # saving the bad state and writes <workdir>/nonfinite_report.json; "skip" drops that
  # step's update (counted as `skipped_steps`) and stops after max_consecutive_skips
  # bad steps in a row.
  config.train.nonfinite_policy = "stop"
  config.train.max_consecutive_skips = 5
  # -1: resume from the latest checkpoint; a step: resume from that one instead (e.g.
  # when the latest is corrupt). Later checkpoints move to checkpoints_set_aside/.
  config.train.restore_step = -1
  # Printed with the model's top-5 guesses at the end of `prelm train`.
  config.train.fill_mask_prompts = ("return the [MASK] of the function.",
                                    "the [MASK] of the list is changed.")

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 100
  config.optim.warmup_fraction = 0.0     # > 0: warm-up = this fraction of num_steps
  config.optim.decay = "linear"          # linear | cosine | constant
  config.optim.end_learning_rate_fraction = 0.0
  config.optim.weight_decay = 0.01
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-6
  config.optim.grad_clip_norm = 1.0       # global-norm clipping; 0: none
  # < 1: layer-wise learning-rate decay (fine-tuning; ELECTRA uses 0.8): the head at
  # the full rate, each encoder layer below at this times the one above, embeddings last.
  config.optim.layer_decay = 1.0

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1                  # -1: all devices not used by the other axes
  config.mesh.fsdp = 1
  config.mesh.tensor = 1
  # Multi-slice TPU / multi-node GPU: each axis above is per slice (ICI), times these
  # across slices (DCN); mesh_utils.create_hybrid_device_mesh lays them out when > 1.
  # E.g. 2 pods of 256 chips with FSDP inside and data parallel across: fsdp=-1, dcn_data=2.
  config.mesh.dcn_data = 1
  config.mesh.dcn_fsdp = 1
  config.mesh.dcn_tensor = 1

  config.sharding = ml_collections.ConfigDict()
  # Logical axis name (model/layers.py) -> mesh axis, None or a tuple of axes.
  # Data parallel, FSDP and tensor parallel are chosen by these and the mesh sizes.
  config.sharding.logical_axis_rules = sharding.DEFAULT_RULES
  return config
