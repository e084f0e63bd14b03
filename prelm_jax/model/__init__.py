"""The network: encoders (transformer, lstm), heads, and build_model."""
from prelm_jax.model.config import EncoderConfig
from prelm_jax.model.pretraining import BertForPreTraining
from prelm_jax.model.pretraining import build_model
