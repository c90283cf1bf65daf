"""Pins for aigc_course.vae that tests/test_vae.py leaves loose (found by mutation testing): the exact layers of
every encoder and decoder (mlp and conv, 8×8 and 28×28, conditional), every default argument, embedding sizes,
the exact message of each validation branch (bool vs int, boundaries, TypeError vs ValueError),
conditional_log_likelihood against hand-computed values with logvar broadcasting and dtype widening,
decoded_mean, VAE.forward, and sample / reconstruct / importance_weighted_log_likelihood: eval mode and no
gradients during the call, the train mode restored, the documented ε draw order with chunking, the −log k term."""

import math
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from aigc_course.vae import (
    VAE,
    BernoulliDecoder,
    ConvEncoder,
    GaussianDecoder,
    GaussianEncoder,
    build_vae,
    conditional_log_likelihood,
    decoded_mean,
    elbo,
    importance_weighted_log_likelihood,
    reconstruct,
    reparameterize,
    sample,
)

torch.set_num_threads(1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def raises(exc, msg):
    """The whole message, exactly."""
    return pytest.raises(exc, match="^" + re.escape(msg) + r"\Z")


def spec(seq: nn.Module) -> list[tuple]:
    """The layers of a Sequential as plain tuples: type, sizes, kernel, stride, padding."""
    out: list[tuple] = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding))
        elif isinstance(m, nn.Flatten):
            out.append(("Flatten", m.start_dim, m.end_dim))
        elif isinstance(m, nn.Unflatten):
            out.append(("Unflatten", m.dim, tuple(m.unflattened_size)))
        else:
            out.append((type(m).__name__,))
    return out


def lin(m: nn.Module) -> tuple[int, int]:
    assert isinstance(m, nn.Linear)
    return m.in_features, m.out_features


def emb(m: nn.Module | None) -> tuple[int, int] | None:
    if m is None:
        return None
    assert isinstance(m, nn.Embedding)
    return m.num_embeddings, m.embedding_dim


R = ("ReLU",)
K4S2P1 = ((4, 4), (2, 2), (1, 1))


def conv(kind: str, cin: int, cout: int) -> tuple:
    return (kind, cin, cout, *K4S2P1)


def mlp_decoder(width_in: int, hidden: int, out_shape: tuple[int, ...]) -> list[tuple]:
    return [("Linear", width_in, hidden), R, ("Linear", hidden, hidden), R,
            ("Linear", hidden, math.prod(out_shape)), ("Unflatten", 1, out_shape)]


def conv_decoder(width_in: int, width: int, channels: int, size: int) -> list[tuple]:
    b = size // 4
    return [("Linear", width_in, 2 * width * b * b), R, ("Unflatten", 1, (2 * width, b, b)),
            conv("ConvTranspose2d", 2 * width, width), R, conv("ConvTranspose2d", width, channels)]


# --------------------------------------------------------------------------- encoders: layers and defaults

def test_gaussian_encoder_defaults():
    e = GaussianEncoder()
    assert e.in_shape == (1, 8, 8) and e.latent_dim == 8 and e.num_classes is None and e.embed is None
    assert spec(e.net) == [("Linear", 64, 256), R, ("Linear", 256, 256), R]
    assert lin(e.mu) == lin(e.logvar) == (256, 8)


@pytest.mark.parametrize("args, kw, in_shape, net, embed", [
    (((1, 28, 28), 4), dict(hidden=16, depth=1), (1, 28, 28), [("Linear", 784, 16), R], None),
    (((1, 28, 28), 4), dict(hidden=16, num_classes=10), (1, 28, 28),
     [("Linear", 784 + 32, 16), R, ("Linear", 16, 16), R], (10, 32)),
    ((64, 3), dict(hidden=5, depth=3, num_classes=4), (64,),                 # min(64, 32) = 32
     [("Linear", 96, 5), R, ("Linear", 5, 5), R, ("Linear", 5, 5), R], (4, 32)),
    ((33, 3), dict(hidden=5, num_classes=2), (33,), [("Linear", 65, 5), R, ("Linear", 5, 5), R], (2, 32)),
    ((3, 2), dict(hidden=4, num_classes=3), (3,), [("Linear", 6, 4), R, ("Linear", 4, 4), R], (3, 3)),
    (([2, 3], 1), dict(hidden=1, depth=1), (2, 3), [("Linear", 6, 1), R], None),   # a list, and every 1
])
def test_gaussian_encoder_layers(args, kw, in_shape, net, embed):
    e = GaussianEncoder(*args, **kw)
    assert e.in_shape == in_shape and e.latent_dim == args[1]
    assert spec(e.net) == net and emb(e.embed) == embed
    assert lin(e.mu) == lin(e.logvar) == (kw["hidden"], args[1])
    assert e.num_classes == kw.get("num_classes")


def test_conv_encoder_defaults():
    e = ConvEncoder()
    assert e.in_shape == (1, 8, 8) and e.latent_dim == 8 and e.num_classes is None and e.embed is None
    assert spec(e.features) == [conv("Conv2d", 1, 32), R, conv("Conv2d", 32, 64), R, ("Flatten", 1, -1)]
    assert spec(e.net) == [("Linear", 64 * 2 * 2, 256), R]
    assert lin(e.mu) == lin(e.logvar) == (256, 8)


@pytest.mark.parametrize("kw, feat, embed", [
    (dict(image_size=28, latent_dim=3, channels=2, width=4, hidden=16), 8 * 7 * 7, None),
    (dict(image_size=28, latent_dim=3, channels=2, width=4, hidden=16, num_classes=10), 8 * 7 * 7 + 32, (10, 32)),
    (dict(image_size=8, latent_dim=1, channels=1, width=1, hidden=1, num_classes=2), 2 * 2 * 2 + 32, (2, 32)),
    (dict(image_size=12, latent_dim=2, channels=3, width=2, hidden=3), 4 * 3 * 3, None),
])
def test_conv_encoder_layers(kw, feat, embed):
    e = ConvEncoder(**kw)
    c, w, s = kw["channels"], kw["width"], kw["image_size"]
    assert e.in_shape == (c, s, s) and e.latent_dim == kw["latent_dim"] and e.num_classes == kw.get("num_classes")
    assert spec(e.features) == [conv("Conv2d", c, w), R, conv("Conv2d", w, 2 * w), R, ("Flatten", 1, -1)]
    assert spec(e.net) == [("Linear", feat, kw["hidden"]), R] and emb(e.embed) == embed
    assert lin(e.mu) == lin(e.logvar) == (kw["hidden"], kw["latent_dim"])
    x = torch.rand(2, c, s, s, generator=gen(0))
    y = None if embed is None else torch.tensor([0, 1])
    mu, logvar = e(x, y)
    assert mu.shape == logvar.shape == (2, kw["latent_dim"])


# --------------------------------------------------------------------------- decoders: layers and defaults

@pytest.mark.parametrize("cls", [BernoulliDecoder, GaussianDecoder])
def test_decoder_defaults(cls):
    d = cls()
    assert d.latent_dim == 8 and d.out_shape == (1, 8, 8) and d.num_classes is None
    assert d.body.out_shape == (1, 8, 8) and d.body.embed is None
    assert spec(d.body.net) == mlp_decoder(8, 256, (1, 8, 8))
    c = cls(kind="conv")                                           # default width 32
    assert spec(c.body.net) == conv_decoder(8, 32, 1, 8)


def test_gaussian_decoder_default_logvar_is_a_learned_zero():
    d = GaussianDecoder()
    assert isinstance(d.logvar, nn.Parameter) and d.logvar.item() == 0.0 and d.logvar.shape == ()
    fixed = GaussianDecoder(logvar=-1.5, learn_logvar=False)
    assert not isinstance(fixed.logvar, nn.Parameter) and fixed.logvar.item() == -1.5
    assert "logvar" in dict(fixed.named_buffers())


@pytest.mark.parametrize("cls", [BernoulliDecoder, GaussianDecoder])
@pytest.mark.parametrize("args, kw, net, embed", [
    ((4, (1, 28, 28), "mlp"), dict(hidden=16), mlp_decoder(4, 16, (1, 28, 28)), None),
    ((4, (1, 28, 28), "mlp"), dict(hidden=16, num_classes=10), mlp_decoder(8, 16, (1, 28, 28)), (10, 4)),
    ((4, (2, 28, 28), "conv"), dict(width=8), conv_decoder(4, 8, 2, 28), None),
    ((4, (2, 28, 28), "conv"), dict(width=8, num_classes=10), conv_decoder(8, 8, 2, 28), (10, 4)),
    ((3, (1, 8, 8), "conv"), dict(width=1, hidden=1, num_classes=2), conv_decoder(6, 1, 1, 8), (2, 3)),
    ((1, 5, "mlp"), dict(hidden=1, width=1), mlp_decoder(1, 1, (5,)), None),
])
def test_decoder_layers(cls, args, kw, net, embed):
    d = cls(*args, **kw)
    assert d.latent_dim == args[0] and d.num_classes == kw.get("num_classes")
    assert d.out_shape == d.body.out_shape == (args[1] if isinstance(args[1], tuple) else (args[1],))
    assert spec(d.body.net) == net and emb(d.body.embed) == embed


# --------------------------------------------------------------------------- build_vae

def test_build_vae_defaults():
    m = build_vae()
    assert m.latent_dim == 8 and m.in_shape == (1, 8, 8) and m.num_classes is None and m.likelihood == "bernoulli"
    assert type(m.encoder) is GaussianEncoder and type(m.decoder) is BernoulliDecoder
    assert spec(m.encoder.net) == [("Linear", 64, 256), R, ("Linear", 256, 256), R]
    assert spec(m.decoder.body.net) == mlp_decoder(8, 256, (1, 8, 8))
    c = build_vae(kind="conv")
    assert type(c.encoder) is ConvEncoder and spec(c.encoder.features)[0] == conv("Conv2d", 1, 32)
    assert spec(c.encoder.net) == [("Linear", 256, 256), R]
    assert spec(c.decoder.body.net) == conv_decoder(8, 32, 1, 8)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_build_vae_passes_every_setting_on(kind, likelihood):
    m = build_vae(3, 12, kind=kind, likelihood=likelihood, num_classes=4, channels=2, hidden=6, width=5)
    assert m.in_shape == (2, 12, 12) and m.latent_dim == 3 and m.num_classes == 4 and m.likelihood == likelihood
    dec_cls = BernoulliDecoder if likelihood == "bernoulli" else GaussianDecoder
    assert type(m.decoder) is dec_cls and m.decoder.out_shape == (2, 12, 12)
    assert emb(m.decoder.body.embed) == (4, 3)
    if kind == "mlp":
        assert type(m.encoder) is GaussianEncoder and m.encoder.in_shape == (2, 12, 12)
        assert spec(m.encoder.net) == [("Linear", 288 + 32, 6), R, ("Linear", 6, 6), R]
        assert spec(m.decoder.body.net) == mlp_decoder(6, 6, (2, 12, 12))
    else:
        assert type(m.encoder) is ConvEncoder and m.encoder.in_shape == (2, 12, 12)
        assert spec(m.encoder.features)[:3] == [conv("Conv2d", 2, 5), R, conv("Conv2d", 5, 10)]
        assert spec(m.encoder.net) == [("Linear", 10 * 3 * 3 + 32, 6), R]
        assert spec(m.decoder.body.net) == conv_decoder(6, 5, 2, 12)


# --------------------------------------------------------------------------- constructor validation

SHAPE_MSG = "in_shape must be a positive int or a tuple of positive ints, got "


@pytest.mark.parametrize("make, exc, msg", [
    (lambda: GaussianEncoder(0), ValueError, SHAPE_MSG + "(0,)"),
    (lambda: GaussianEncoder(True), ValueError, SHAPE_MSG + "True"),
    (lambda: GaussianEncoder(8.0), ValueError, SHAPE_MSG + "8.0"),
    (lambda: GaussianEncoder(()), ValueError, SHAPE_MSG + "()"),
    (lambda: GaussianEncoder((1, 0, 8)), ValueError, SHAPE_MSG + "(1, 0, 8)"),
    (lambda: GaussianEncoder((1, 8.0, 8)), ValueError, SHAPE_MSG + "(1, 8.0, 8)"),
    (lambda: GaussianEncoder((1, True, 8)), ValueError, SHAPE_MSG + "(1, True, 8)"),
    (lambda: GaussianEncoder(latent_dim=0), ValueError, "latent_dim must be >= 1, got 0"),
    (lambda: GaussianEncoder(latent_dim=True), TypeError, "latent_dim must be an int, got bool True"),
    (lambda: GaussianEncoder(hidden=0), ValueError, "hidden must be >= 1, got 0"),
    (lambda: GaussianEncoder(hidden=2.0), TypeError, "hidden must be an int, got float 2.0"),
    (lambda: GaussianEncoder(depth=0), ValueError, "depth must be >= 1, got 0"),
    (lambda: GaussianEncoder(depth=False), TypeError, "depth must be an int, got bool False"),
    (lambda: GaussianEncoder(num_classes=1), ValueError, "num_classes must be >= 2, got 1"),
    (lambda: ConvEncoder(image_size=4), ValueError, "image_size must be >= 8, got 4"),
    (lambda: ConvEncoder(image_size=10), ValueError,
     "image_size must be a multiple of 4 (two stride-2 layers), got 10"),
    (lambda: ConvEncoder(channels=0), ValueError, "channels must be >= 1, got 0"),
    (lambda: ConvEncoder(channels=True), TypeError, "channels must be an int, got bool True"),
    (lambda: ConvEncoder(latent_dim=0), ValueError, "latent_dim must be >= 1, got 0"),
    (lambda: ConvEncoder(width=0), ValueError, "width must be >= 1, got 0"),
    (lambda: ConvEncoder(hidden=0), ValueError, "hidden must be >= 1, got 0"),
    (lambda: ConvEncoder(num_classes=1), ValueError, "num_classes must be >= 2, got 1"),
])
def test_encoder_settings_are_validated(make, exc, msg):
    with raises(exc, msg):
        make()


@pytest.mark.parametrize("cls", [BernoulliDecoder, GaussianDecoder])
@pytest.mark.parametrize("kw, exc, msg", [
    (dict(latent_dim=0), ValueError, "latent_dim must be >= 1, got 0"),
    (dict(latent_dim=True), TypeError, "latent_dim must be an int, got bool True"),
    (dict(out_shape=0), ValueError, "out_shape must be a positive int or a tuple of positive ints, got (0,)"),
    (dict(out_shape=(1, 8, 0)), ValueError, "out_shape must be a positive int or a tuple of positive ints, "
                                            "got (1, 8, 0)"),
    (dict(hidden=0), ValueError, "hidden must be >= 1, got 0"),
    (dict(width=0), ValueError, "width must be >= 1, got 0"),
    (dict(width=True), TypeError, "width must be an int, got bool True"),
    (dict(num_classes=1), ValueError, "num_classes must be >= 2, got 1"),
    (dict(kind="rnn"), ValueError, "kind must be 'mlp' or 'conv', got 'rnn'"),
    (dict(kind=1), ValueError, "kind must be 'mlp' or 'conv', got 1"),
    (dict(kind="conv", out_shape=64), ValueError,
     "out_shape must be (channels, s, s) with s a multiple of 4 for a conv model, got (64,)"),
    (dict(kind="conv", out_shape=(1, 8, 12)), ValueError,
     "out_shape must be (channels, s, s) with s a multiple of 4 for a conv model, got (1, 8, 12)"),
    (dict(kind="conv", out_shape=(1, 12, 8)), ValueError,
     "out_shape must be (channels, s, s) with s a multiple of 4 for a conv model, got (1, 12, 8)"),
    (dict(kind="conv", out_shape=(1, 8, 8, 8)), ValueError,
     "out_shape must be (channels, s, s) with s a multiple of 4 for a conv model, got (1, 8, 8, 8)"),
])
def test_decoder_settings_are_validated(cls, kw, exc, msg):
    with raises(exc, msg):
        cls(**kw)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(logvar=True), ValueError, "logvar must be a finite number, got True"),
    (dict(logvar="1"), ValueError, "logvar must be a finite number, got '1'"),
    (dict(logvar=math.inf), ValueError, "logvar must be a finite number, got inf"),
    (dict(logvar=math.nan), ValueError, "logvar must be a finite number, got nan"),
    (dict(learn_logvar=1), TypeError, "learn_logvar must be True or False, got 1"),
])
def test_gaussian_decoder_logvar_settings_are_validated(kw, exc, msg):
    with raises(exc, msg):
        GaussianDecoder(**kw)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(likelihood="poisson"), ValueError, "likelihood must be 'bernoulli' or 'gaussian', got 'poisson'"),
    (dict(likelihood=None), ValueError, "likelihood must be 'bernoulli' or 'gaussian', got None"),
    (dict(kind="rnn", image_size=10), ValueError, "kind must be 'mlp' or 'conv', got 'rnn'"),   # checked first
    (dict(kind=None), ValueError, "kind must be 'mlp' or 'conv', got None"),
    (dict(channels=0), ValueError, "channels must be >= 1, got 0"),
    (dict(channels=True), TypeError, "channels must be an int, got bool True"),
    (dict(image_size=10), ValueError, "image_size must be a multiple of 4 (two stride-2 layers), got 10"),
])
def test_build_vae_settings_are_validated(kw, exc, msg):
    with raises(exc, msg):
        build_vae(**kw)


# --------------------------------------------------------------------------- forward validation of the models

@pytest.mark.parametrize("make, where", [(lambda n: GaussianEncoder(num_classes=n, hidden=16), "GaussianEncoder"),
                                         (lambda n: ConvEncoder(num_classes=n, hidden=16, width=2), "ConvEncoder")])
def test_encoder_forward_messages(make, where):
    torch.manual_seed(0)   # a fixed init: a tiny ReLU net can be dead for a row (then labels do nothing)
    e, c = make(None), make(10)
    with raises(ValueError, f"x must have shape (B, 1, 8, 8) with B >= 1 for {where}, got (2, 1, 8, 4)"):
        e(torch.zeros(2, 1, 8, 4))
    with raises(ValueError, f"x must have shape (B, 1, 8, 8) with B >= 1 for {where}, got (0, 1, 8, 8)"):
        e(torch.zeros(0, 1, 8, 8))
    with raises(TypeError, "x must be a floating-point tensor, got dtype torch.int64"):
        e(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with raises(ValueError, "labels were given, but this encoder is unconditional (num_classes=None)"):
        e(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))
    with raises(ValueError, "this encoder is class-conditional (num_classes=10): pass labels of shape (2,)"):
        c(torch.zeros(2, 1, 8, 8))
    x = torch.rand(2, 1, 8, 8, generator=gen(0))
    assert not torch.equal(c(x, torch.tensor([0, 1]))[0], c(x, torch.tensor([2, 1]))[0])


@pytest.mark.parametrize("cls", [BernoulliDecoder, GaussianDecoder])
def test_decoder_forward_messages_and_labels(cls):
    torch.manual_seed(0)   # hidden=16 with a fixed init: a tiny ReLU net can be dead for a row (then labels do nothing)
    d, c = cls(3, hidden=16), cls(3, hidden=16, num_classes=10)
    name = cls.__name__
    with raises(ValueError, f"z must have shape (B, 3) with B >= 1 for {name}, got (5, 4)"):
        d(torch.zeros(5, 4))
    with raises(ValueError, f"z must have shape (B, 3) with B >= 1 for {name}, got (0, 3)"):
        d(torch.zeros(0, 3))
    with raises(TypeError, "z must be a torch.Tensor, got list"):
        d([[0.0, 0.0, 0.0]])
    with raises(ValueError, "labels were given, but this decoder is unconditional (num_classes=None)"):
        d(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))
    with raises(ValueError, "this decoder is class-conditional (num_classes=10): pass labels of shape (5,)"):
        c(torch.zeros(5, 3))
    with raises(ValueError, "labels must have shape (5,) to match the batch, got (3,)"):
        c(torch.zeros(5, 3), torch.zeros(3, dtype=torch.long))
    with raises(ValueError, "labels must lie in [0, 9], got values in [0, 10]"):
        c(torch.zeros(5, 3), torch.tensor([0, 1, 2, 3, 10]))
    z = torch.randn(5, 3, generator=gen(1))
    y0, y1 = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([9, 1, 2, 3, 4])
    out0, out1 = c(z, y0), c(z, y1)
    m0, m1 = decoded_mean(out0, c.likelihood), decoded_mean(out1, c.likelihood)
    assert m0.shape == (5, 1, 8, 8)
    assert not torch.equal(m0[0], m1[0]) and torch.equal(m0[1:], m1[1:])      # only row 0's label changed


def test_gaussian_decoder_logvar_follows_the_mean_dtype_under_autocast():
    d = GaussianDecoder(3, hidden=4, logvar=-1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, logvar = d(torch.zeros(2, 3))
    assert mean.dtype == logvar.dtype == torch.bfloat16
    assert logvar.shape == (2, 1, 8, 8) and (logvar == -1.0).all()



@pytest.mark.parametrize("make, arg", [
    (lambda n: GaussianEncoder(hidden=4, num_classes=n), torch.rand(2, 1, 8, 8)),
    (lambda n: BernoulliDecoder(3, hidden=4, num_classes=n), torch.zeros(2, 3)),
    (lambda n: GaussianDecoder(3, kind="conv", width=2, num_classes=n), torch.zeros(2, 3)),
])
def test_label_embedding_follows_the_input_dtype(make, arg):
    """A conditional model treats dtypes like an unconditional one: the label embedding is cast to the input's
    dtype, so float32 input to a float64 model fails in both instead of being silently promoted."""
    y = torch.tensor([0, 1])
    for n, extra in ((None, ()), (3, (y,))):
        m = make(n).double()
        out = m(arg.double(), *extra)
        assert (out[0] if isinstance(out, tuple) else out).dtype == torch.float64
        with pytest.raises(RuntimeError):
            m(arg, *extra)

# --------------------------------------------------------------------------- VAE construction with stub models

class Stub(nn.Module):
    """A module with the given attributes; forward returns ``out(x)``."""

    def __init__(self, out=None, **attrs) -> None:
        super().__init__()
        self.out = out
        for k, v in attrs.items():
            setattr(self, k, v)

    def forward(self, x, labels=None):
        return self.out(x)


def enc(**kw) -> Stub:
    return Stub(**{"latent_dim": 2, "in_shape": (3,), **kw})


def dec(**kw) -> Stub:
    return Stub(**{"latent_dim": 2, "likelihood": "bernoulli", **kw})


LD_MSG = "must have a positive int attribute latent_dim, got "


@pytest.mark.parametrize("make, exc, msg", [
    (lambda: VAE("enc", dec()), TypeError, "encoder must be a torch.nn.Module, got str"),
    (lambda: VAE(enc(), 3), TypeError, "decoder must be a torch.nn.Module, got int"),
    (lambda: VAE(Stub(in_shape=(3,)), dec()), TypeError, "encoder " + LD_MSG + "None"),
    (lambda: VAE(enc(latent_dim=True), dec()), TypeError, "encoder " + LD_MSG + "True"),
    (lambda: VAE(enc(latent_dim=0), dec()), TypeError, "encoder " + LD_MSG + "0"),
    (lambda: VAE(enc(latent_dim="2"), dec()), TypeError, "encoder " + LD_MSG + "'2'"),
    (lambda: VAE(enc(latent_dim=2.0), dec()), TypeError, "encoder " + LD_MSG + "2.0"),
    (lambda: VAE(enc(), dec(latent_dim=0)), TypeError, "decoder " + LD_MSG + "0"),
    (lambda: VAE(enc(), Stub(likelihood="bernoulli")), TypeError, "decoder " + LD_MSG + "None"),
    (lambda: VAE(enc(), Stub(latent_dim=2)), TypeError,
     "decoder must have an attribute likelihood in ('bernoulli', 'gaussian'), got None"),
    (lambda: VAE(enc(), dec(likelihood="poisson")), TypeError,
     "decoder must have an attribute likelihood in ('bernoulli', 'gaussian'), got 'poisson'"),
    (lambda: VAE(Stub(latent_dim=2), dec()), ValueError,
     "encoder.in_shape must be a positive int or a tuple of positive ints, got None"),
    (lambda: VAE(enc(in_shape=(0,)), dec()), ValueError,
     "encoder.in_shape must be a positive int or a tuple of positive ints, got (0,)"),
    (lambda: VAE(enc(num_classes=3), dec(num_classes=4)), ValueError,
     "encoder and decoder must agree on num_classes, got 3 and 4"),
])
def test_vae_protocol_is_validated(make, exc, msg):
    with raises(exc, msg):
        make()


def test_vae_accepts_latent_dim_1_and_an_int_in_shape():
    m = VAE(enc(latent_dim=1, in_shape=3), dec(latent_dim=1, likelihood="gaussian"))
    assert m.latent_dim == 1 and m.in_shape == (3,) and m.num_classes is None and m.likelihood == "gaussian"
    assert m.encoder is not None and m.decoder is not None


@pytest.mark.parametrize("out, exc, msg", [
    (lambda x: [x[:, :2], x[:, :2]], TypeError, "encoder must return a (mu, logvar) pair of tensors"),
    (lambda x: (x[:, :2], x[:, :2], x[:, :2]), TypeError, "encoder must return a (mu, logvar) pair of tensors"),
    (lambda x: (x[:, :2], "logvar"), TypeError, "encoder must return a (mu, logvar) pair of tensors"),
    (lambda x: x[:, :2], TypeError, "encoder must return a (mu, logvar) pair of tensors"),
    (lambda x: (x[:, :2], x), ValueError, "encoder must return mu and logvar of shape (4, 2), got (4, 2) and (4, 3)"),
    (lambda x: (x, x[:, :2]), ValueError, "encoder must return mu and logvar of shape (4, 2), got (4, 3) and (4, 2)"),
])
def test_vae_encode_checks_what_the_encoder_returns(out, exc, msg):
    m = VAE(enc(out=out), dec())
    with raises(exc, msg):
        m.encode(torch.zeros(4, 3))


def test_vae_encode_and_decode_widen_half_precision():
    m = VAE(enc(out=lambda x: (x[:, :2].half(), x[:, 1:].bfloat16())),
            dec(out=lambda z: (z.half(), z.double())))
    mu, logvar = m.encode(torch.ones(4, 3))
    assert mu.dtype == logvar.dtype == torch.float32
    a, b = m.decode(torch.ones(4, 2))
    assert a.dtype == torch.float32 and b.dtype == torch.float64


# --------------------------------------------------------------------------- VAE.forward

def test_vae_forward_decodes_one_reparameterised_sample_from_the_global_rng():
    torch.manual_seed(0)
    torch.manual_seed(0)
    m = build_vae(3, 8, hidden=32, num_classes=4, likelihood="gaussian")
    x = torch.rand(5, 1, 8, 8, generator=gen(0)) * 1.5          # Gaussian: values above 1 are fine
    y = torch.tensor([0, 1, 2, 3, 0])
    torch.manual_seed(7)
    out = m(x, y)
    torch.manual_seed(7)
    mu, logvar = m.encode(x, y)
    ref = m.decode(mu + torch.exp(0.5 * logvar) * torch.randn(5, 3), y)
    assert isinstance(out, tuple) and len(out) == 2
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], ref[1], rtol=0, atol=0)
    torch.manual_seed(7)
    other = m(x, torch.tensor([3, 1, 2, 3, 0]))
    assert not torch.equal(other[0][0], out[0][0]) and torch.equal(other[0][1:], out[0][1:])
    with raises(ValueError, "this VAE is class-conditional (num_classes=4): pass labels of shape (5,)"):
        m(x)
    with raises(ValueError, "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (5, 8, 8)"):
        m(x[:, 0], y)
    b = build_vae(3, 8, hidden=8)
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0, 2]"):
        b(torch.cat([torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 2.0)]))
    assert b(torch.rand(2, 1, 8, 8)).shape == (2, 1, 8, 8)


# --------------------------------------------------------------------------- data checks of the VAE

def test_data_range_is_checked_by_the_vae_itself_only_for_bernoulli():
    b = build_vae(2, 8, hidden=4)
    g = build_vae(2, 8, hidden=4, likelihood="gaussian")
    x = torch.full((2, 1, 8, 8), 0.5)
    lo, hi = x.clone(), x.clone()
    lo[0, 0, 0, 0] = -0.001
    hi[1, 0, 3, 3] = 1.001
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [-0.001, 0.5]"):
        reconstruct(b, lo)
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0.5, 1.001]"):
        reconstruct(b, hi)
    edge = x.clone()
    edge[0, 0, 0, 0], edge[1, 0, 0, 0] = 0.0, 1.0
    assert reconstruct(b, edge).shape == x.shape                      # exactly 0 and 1 are fine
    assert reconstruct(g, lo).shape == reconstruct(g, hi * 3).shape == x.shape
    with raises(ValueError, "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (0, 1, 8, 8)"):
        reconstruct(b, torch.zeros(0, 1, 8, 8))
    with raises(ValueError, "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (2, 1, 8, 4)"):
        elbo(b, torch.zeros(2, 1, 8, 4))


def test_elbo_checks_rng_before_the_data():
    with raises(TypeError, "rng must be a torch.Generator or None, got int"):
        elbo(build_vae(2, 8, hidden=4), torch.zeros(2, 8, 8), rng=0)


# --------------------------------------------------------------------------- reparameterize

@pytest.mark.parametrize("mu, logvar, rng, exc, msg", [
    (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3), None, TypeError,
     "mu must be a floating-point tensor, got dtype torch.int64"),
    ([[0.0]], torch.zeros(1, 1), None, TypeError, "mu must be a torch.Tensor, got list"),
    (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int32), None, TypeError,
     "logvar must be a floating-point tensor, got dtype torch.int32"),
    (torch.zeros(2, 3), [[0.0]], None, TypeError, "logvar must be a torch.Tensor, got list"),
    (torch.zeros(3), torch.zeros(3), None, ValueError, "mu must have shape (B, D) with B >= 1, got (3,)"),
    (torch.zeros(0, 3), torch.zeros(0, 3), None, ValueError, "mu must have shape (B, D) with B >= 1, got (0, 3)"),
    (torch.zeros(2, 3), torch.zeros(2, 3), 0, TypeError, "rng must be a torch.Generator or None, got int"),
])
def test_reparameterize_messages(mu, logvar, rng, exc, msg):
    with raises(exc, msg):
        reparameterize(mu, logvar, rng=rng)


def test_reparameterize_accepts_d_0_and_draws_on_the_generator_device():
    assert reparameterize(torch.zeros(2, 0), torch.zeros(2, 0), rng=gen(0)).shape == (2, 0)
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    eps = torch.randn(1, 2, generator=gen(3))
    with torch.device("meta"):                        # a default device must not change where ε is drawn
        z = reparameterize(mu, logvar, rng=gen(3))
        torch.manual_seed(5)
        z_global = reparameterize(mu, logvar)
    assert z.device.type == "cpu"
    torch.testing.assert_close(z, mu + torch.tensor([[1.0, 2.0]]) * eps)
    torch.manual_seed(5)
    torch.testing.assert_close(z_global, mu + torch.tensor([[1.0, 2.0]]) * torch.randn(1, 2))


# --------------------------------------------------------------------------- conditional_log_likelihood

def bern_ll(logits: list[float], x: list[float]) -> float:
    s = 0.0
    for lg, xi in zip(logits, x, strict=True):
        s += xi * math.log(1 / (1 + math.exp(-lg))) + (1 - xi) * math.log(1 / (1 + math.exp(lg)))
    return s


def gauss_ll(mean: list[float], logvar: list[float], x: list[float]) -> float:
    return sum(-0.5 * (math.log(2 * math.pi) + lv + (xi - m) ** 2 * math.exp(-lv))
               for m, lv, xi in zip(mean, logvar, x, strict=True))


L = [[2.0, -1.0, 0.5, 0.0], [-3.0, 0.25, 1.5, -0.75]]
X = [[1.0, 0.25, 0.0, 0.6], [0.0, 1.0, 0.9, 0.1]]
M = [[0.3, 0.5, 0.1, 0.9], [0.2, 0.8, 0.4, 0.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_bernoulli_log_likelihood_by_hand_and_dtypes(dtype):
    logits = torch.tensor(L, dtype=dtype).reshape(2, 1, 2, 2)
    x = torch.tensor(X, dtype=dtype).reshape(2, 1, 2, 2)
    ll = conditional_log_likelihood(logits, x, "bernoulli")
    want = torch.float64 if dtype == torch.float64 else torch.float32
    assert ll.shape == (2,) and ll.dtype == want
    ref = [bern_ll(logits[i].double().flatten().tolist(), x[i].double().flatten().tolist()) for i in range(2)]
    assert ll.tolist() == pytest.approx(ref, rel=1e-6)


def test_bernoulli_log_likelihood_uses_the_logits_dtype_for_x():
    ll = conditional_log_likelihood(torch.tensor(L), torch.tensor(X, dtype=torch.float64), "bernoulli")
    assert ll.dtype == torch.float32
    assert ll.tolist() == pytest.approx([bern_ll(L[i], X[i]) for i in range(2)], rel=1e-6)


@pytest.mark.parametrize("logvar, per_pixel", [
    (torch.tensor(-0.5), lambda i, j: -0.5),
    (torch.tensor([0.1, -0.2, 0.3, -1.0]), lambda i, j: [0.1, -0.2, 0.3, -1.0][j]),
    (torch.tensor([[0.4], [-0.6]]), lambda i, j: [0.4, -0.6][i]),
    (torch.tensor([[0.1, 0.2, 0.3, 0.4], [-0.1, -0.2, -0.3, -0.4]]), lambda i, j: 0.1 * (j + 1) * (1 - 2 * i)),
])
def test_gaussian_log_likelihood_by_hand_with_logvar_broadcasting(logvar, per_pixel):
    ll = conditional_log_likelihood((torch.tensor(M), logvar), torch.tensor(X), "gaussian")
    ref = [gauss_ll(M[i], [per_pixel(i, j) for j in range(4)], X[i]) for i in range(2)]
    assert ll.shape == (2,) and ll.dtype == torch.float32
    assert ll.tolist() == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gaussian_log_likelihood_widens_half_precision(dtype):
    mean, logvar = torch.tensor(M, dtype=dtype), torch.full((2, 4), -0.5, dtype=dtype)
    ll = conditional_log_likelihood((mean, logvar), torch.tensor(X, dtype=dtype), "gaussian")
    assert ll.dtype == torch.float32
    ref = [gauss_ll(mean[i].double().tolist(), [-0.5] * 4, torch.tensor(X[i], dtype=dtype).double().tolist())
           for i in range(2)]
    assert ll.tolist() == pytest.approx(ref, rel=1e-5)


def test_gaussian_log_likelihood_uses_the_mean_dtype_for_x_and_allows_any_real_x():
    x = torch.tensor(X, dtype=torch.float64) * 3 - 1                   # outside [0, 1]: fine for a Gaussian
    ll = conditional_log_likelihood((torch.tensor(M), torch.tensor(0.0)), x, "gaussian")
    assert ll.dtype == torch.float32
    assert ll.tolist() == pytest.approx([gauss_ll(M[i], [0.0] * 4, x[i].tolist()) for i in range(2)], rel=1e-6)


def test_bernoulli_x_range_boundaries():
    logits = torch.zeros(1, 3)
    assert conditional_log_likelihood(logits, torch.tensor([[0.0, 1.0, 0.5]]), "bernoulli").item() == \
        pytest.approx(-3 * math.log(2), rel=1e-6)
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [-0.001, 0.5]"):
        conditional_log_likelihood(logits, torch.tensor([[-0.001, 0.5, 0.5]]), "bernoulli")
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0.5, 1.001]"):
        conditional_log_likelihood(logits, torch.tensor([[0.5, 1.001, 0.5]]), "bernoulli")


G = (torch.zeros(2, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("out, x, likelihood, exc, msg", [
    (torch.zeros(2, 3), [[0.0] * 3] * 2, "bernoulli", TypeError, "x must be a torch.Tensor, got list"),
    (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), "bernoulli", TypeError,
     "x must be a floating-point tensor, got dtype torch.int64"),
    (torch.zeros(()), torch.zeros(()), "bernoulli", ValueError, "x must have shape (B, ...) with B >= 1, got ()"),
    (torch.zeros(0), torch.zeros(0), "bernoulli", ValueError, "x must have shape (B, ...) with B >= 1, got (0,)"),
    (torch.zeros(0, 3), torch.zeros(0, 3), "bernoulli", ValueError,
     "x must have shape (B, ...) with B >= 1, got (0, 3)"),
    (G, torch.zeros(0, 3), "gaussian", ValueError, "x must have shape (B, ...) with B >= 1, got (0, 3)"),
    (torch.zeros(2, 3), torch.tensor([[0.0, math.nan, 0.0]] * 2), "bernoulli", ValueError,
     "x must be finite, got NaN or inf"),
    (G, torch.tensor([[0.0, math.inf, 0.0]] * 2), "gaussian", ValueError, "x must be finite, got NaN or inf"),
    (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3), "bernoulli", TypeError,
     "decoder_output must be a floating-point tensor, got dtype torch.int64"),
    (G, torch.zeros(2, 3), "bernoulli", TypeError, "decoder_output must be a torch.Tensor, got tuple"),
    (list(G), torch.zeros(2, 3), "gaussian", TypeError,
     "decoder_output must be a (mean, logvar) pair for a Gaussian likelihood, got list"),
    (torch.zeros(2, 3), torch.zeros(2, 3), "gaussian", TypeError,
     "decoder_output must be a (mean, logvar) pair for a Gaussian likelihood, got Tensor"),
    ((*G, G[0]), torch.zeros(2, 3), "gaussian", TypeError,
     "decoder_output must be a (mean, logvar) pair for a Gaussian likelihood, got tuple"),
    ((torch.zeros(2, 3, dtype=torch.long), G[1]), torch.zeros(2, 3), "gaussian", TypeError,
     "mean must be a floating-point tensor, got dtype torch.int64"),
    ((G[0], torch.zeros(2, 3, dtype=torch.long)), torch.zeros(2, 3), "gaussian", TypeError,
     "logvar must be a floating-point tensor, got dtype torch.int64"),
    ((G[0], 0.0), torch.zeros(2, 3), "gaussian", TypeError, "logvar must be a torch.Tensor, got float"),
    ((torch.zeros(2, 4), G[1]), torch.zeros(2, 3), "gaussian", ValueError,
     "mean must have the shape of x (2, 3), got (2, 4)"),
    ((G[0], torch.zeros(4)), torch.zeros(2, 3), "gaussian", ValueError,
     "logvar must broadcast to the shape of x (2, 3), got (4,)"),
    ((G[0], torch.zeros(3, 3)), torch.zeros(2, 3), "gaussian", ValueError,
     "logvar must broadcast to the shape of x (2, 3), got (3, 3)"),
    (G, torch.zeros(2, 3), 1, ValueError, "likelihood must be 'bernoulli' or 'gaussian', got 1"),
])
def test_conditional_log_likelihood_messages(out, x, likelihood, exc, msg):
    with raises(exc, msg):
        conditional_log_likelihood(out, x, likelihood)


def test_gaussian_log_likelihood_of_an_empty_image_is_zero():
    ll = conditional_log_likelihood((torch.zeros(2, 0), torch.tensor(0.0)), torch.zeros(2, 0), "gaussian")
    assert torch.equal(ll, torch.zeros(2))


# --------------------------------------------------------------------------- decoded_mean

def test_decoded_mean():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    torch.testing.assert_close(decoded_mean(logits, "bernoulli"), torch.tensor([[0.5, 0.75]]))
    mean, logvar = torch.tensor([[0.2, 0.7]]), torch.tensor([[-1.0, 3.0]])
    assert decoded_mean((mean, logvar), "gaussian") is mean
    with raises(ValueError, "likelihood must be 'bernoulli' or 'gaussian', got 'Gaussian'"):
        decoded_mean((mean, logvar), "Gaussian")


# --------------------------------------------------------------------------- sample, reconstruct, IWAE

class LinearEncoder(nn.Module):
    """mu = x A + a, logvar = x C + c on (B, 3) data, float64 (hand-set)."""

    def __init__(self) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[0.5, -0.2], [1.0, 0.3], [-0.4, 0.8]], dtype=torch.float64))
        self.a = nn.Parameter(torch.tensor([0.1, -0.3], dtype=torch.float64))
        self.C = nn.Parameter(torch.tensor([[0.2, -0.1], [0.0, 0.3], [-0.5, 0.1]], dtype=torch.float64))
        self.c = nn.Parameter(torch.tensor([-0.4, 0.2], dtype=torch.float64))
        self.in_shape, self.latent_dim = (3,), 2
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x @ self.A + self.a, x @ self.C + self.c


class ProbeDecoder(nn.Module):
    """logits = z W + b (Bernoulli) or (σ(z W + b), logvar) (Gaussian); records (training, grad enabled)."""

    def __init__(self, likelihood: str = "bernoulli") -> None:
        super().__init__()
        self.likelihood = likelihood
        self.W = nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.2]], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64))
        self.latent_dim = 2
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, z):
        self.calls.append((self.training, torch.is_grad_enabled()))
        out = z @ self.W + self.b
        if self.likelihood == "bernoulli":
            return out
        return torch.sigmoid(out), torch.full_like(out, -1.0)


def probe_vae(likelihood: str = "bernoulli") -> VAE:
    return VAE(LinearEncoder(), ProbeDecoder(likelihood))


XP = torch.tensor([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0], [0.6, 0.3, 0.9]], dtype=torch.float64)


@pytest.mark.parametrize("mode", [True, False])
@pytest.mark.parametrize("call", [
    lambda m: sample(m, 4, rng=gen(0)),
    lambda m: reconstruct(m, XP),
    lambda m: importance_weighted_log_likelihood(m, XP, 3, rng=gen(0)),
])
def test_eval_mode_and_no_grad_during_the_call_and_mode_restored(mode, call):
    m = probe_vae()
    m.train(mode)
    out = call(m)
    assert not out.requires_grad
    assert m.decoder.calls and all(c == (False, False) for c in m.decoder.calls + m.encoder.calls)
    assert m.training is mode and m.encoder.training is mode and m.decoder.training is mode


def test_mode_is_restored_after_an_error():
    m = probe_vae()
    m.train()

    def boom(z):
        raise RuntimeError("boom")

    m.decoder.forward = boom
    for call in (lambda: sample(m, 2), lambda: reconstruct(m, XP),
                 lambda: importance_weighted_log_likelihood(m, XP, 2)):
        with raises(RuntimeError, "boom"):
            call()
        assert m.training and m.decoder.training


def test_sample_and_reconstruct_values():
    m = probe_vae("gaussian")
    W, b = m.decoder.W.detach(), m.decoder.b.detach()
    z = torch.randn(5, 2, generator=gen(4), dtype=torch.float64)
    s = sample(m, 5, rng=gen(4))
    assert s.shape == (5, 3) and s.dtype == torch.float64
    torch.testing.assert_close(s, torch.sigmoid(z @ W + b))                   # the mean, not the logvar
    assert torch.equal(sample(m, 5, rng=gen(4)), s) and not torch.equal(sample(m, 5, rng=gen(5)), s)
    mu = XP @ m.encoder.A.detach() + m.encoder.a.detach()
    r = reconstruct(m, XP)
    torch.testing.assert_close(r, torch.sigmoid(mu @ W + b))
    assert torch.equal(reconstruct(m, XP), r)                                # deterministic
    bern = probe_vae()
    torch.testing.assert_close(reconstruct(bern, XP), torch.sigmoid(mu @ W + b))
    with raises(ValueError, "n must be >= 1, got 0"):
        sample(m, 0)
    with raises(TypeError, "n must be an int, got bool True"):
        sample(m, True)
    with raises(TypeError, "rng must be a torch.Generator or None, got int"):
        sample(m, 2, rng=1)


def iwae_by_hand(m: VAE, x: torch.Tensor, k: int, chunk: int, seed: int) -> torch.Tensor:
    """log (1/k) Σ w with ε drawn as (c, B, D) blocks of ``chunk`` rows in order (the last one shorter)."""
    g = gen(seed)
    A, a, C, c = (t.detach() for t in (m.encoder.A, m.encoder.a, m.encoder.C, m.encoder.c))
    W, b = m.decoder.W.detach(), m.decoder.b.detach()
    mu, logvar = x @ A + a, x @ C + c
    eps = torch.cat([torch.randn(min(chunk, k - i), x.shape[0], 2, generator=g, dtype=torch.float64)
                     for i in range(0, k, chunk)])                            # (k, B, D)
    rows = []
    for i in range(x.shape[0]):
        logs = []
        for j in range(k):
            z = [float(mu[i, d] + math.exp(0.5 * float(logvar[i, d])) * eps[j, i, d]) for d in range(2)]
            logit = [sum(z[d] * float(W[d, p]) for d in range(2)) + float(b[p]) for p in range(3)]
            log_px = bern_ll(logit, x[i].tolist())
            log_pz = sum(-0.5 * (zd ** 2 + math.log(2 * math.pi)) for zd in z)
            log_qz = sum(-0.5 * ((z[d] - float(mu[i, d])) ** 2 * math.exp(-float(logvar[i, d]))
                                 + float(logvar[i, d]) + math.log(2 * math.pi)) for d in range(2))
            logs.append(log_px + log_pz - log_qz)
        top = max(logs)
        rows.append(top + math.log(sum(math.exp(v - top) for v in logs)) - math.log(k))
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("k, batch_size, chunk", [
    (7, 6, 2),            # B = 3: two samples per chunk, k not a multiple: 2, 2, 2, 1
    (7, 1, 1),            # batch_size < B: still one sample per chunk
    (5, 4096, 5),         # one chunk
    (1, 3, 1),
])
def test_iwae_matches_the_documented_draw_order_and_minus_log_k(k, batch_size, chunk):
    m = probe_vae()
    iw = importance_weighted_log_likelihood(m, XP, k, batch_size=batch_size, rng=gen(11))
    assert iw.shape == (3,) and iw.dtype == torch.float64
    torch.testing.assert_close(iw, iwae_by_hand(m, XP, k, chunk, 11), rtol=1e-12, atol=1e-12)
    assert len(m.decoder.calls) == -(-k // chunk)                              # one decoder call per chunk


def test_iwae_settings_are_validated():
    m = probe_vae()
    with raises(ValueError, "batch_size must be >= 1, got 0"):
        importance_weighted_log_likelihood(m, XP, 2, batch_size=0)
    with raises(TypeError, "k must be an int, got bool True"):
        importance_weighted_log_likelihood(m, XP, True)
    with raises(TypeError, "rng must be a torch.Generator or None, got int"):
        importance_weighted_log_likelihood(m, XP, 2, rng=3)
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0, 2]"):
        importance_weighted_log_likelihood(m, XP * 2, 2)


@pytest.mark.cuda
def test_a_cpu_generator_gives_the_same_numbers_for_a_cuda_model():
    m = probe_vae("gaussian")
    s, r = sample(m, 4, rng=gen(2)), reconstruct(m, XP)
    iw = importance_weighted_log_likelihood(m, XP, 5, batch_size=6, rng=gen(3))
    m.cuda()
    s_cuda = sample(m, 4, rng=gen(2))                            # drawn on the CPU generator, then moved
    r_cuda = reconstruct(m, XP)                                  # x is moved to the model's device
    iw_cuda = importance_weighted_log_likelihood(m, XP.cuda(), 5, batch_size=6, rng=gen(3))
    assert s_cuda.device.type == r_cuda.device.type == iw_cuda.device.type == "cuda"
    torch.testing.assert_close(s_cuda.cpu(), s)
    torch.testing.assert_close(r_cuda.cpu(), r)
    torch.testing.assert_close(iw_cuda.cpu(), iw)


def test_log_likelihood_of_one_number_per_sample_and_of_empty_samples():
    x = torch.tensor([0.25, 1.0, 0.0])
    logits = torch.tensor([0.5, -1.0, 2.0])
    want = x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)
    assert torch.allclose(conditional_log_likelihood(logits, x, "bernoulli"), want)
    mean, logvar = torch.tensor([0.1, 0.9, 0.4]), torch.tensor(-1.0)
    want = -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))
    assert torch.allclose(conditional_log_likelihood((mean, logvar), x, "gaussian"), want)
    empty = torch.zeros(2, 0)
    for out, kind in ((empty, "bernoulli"), ((empty, torch.tensor(0.0)), "gaussian")):
        assert torch.equal(conditional_log_likelihood(out, empty, kind), torch.zeros(2))


def test_logvar_that_would_grow_x_is_refused():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="^" + re.escape(
            "logvar must broadcast to the shape of x (2, 4), got (3, 2, 4)") + "$"):
        conditional_log_likelihood((x, torch.zeros(3, 2, 4)), x, "gaussian")
