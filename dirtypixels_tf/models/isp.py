"""ISP models: RAW mosaic (plus its noise level) in, a 3-channel task image out.

Every ISP is a Keras layer called as `isp(raw, alpha, sigma, psf=None, training=...)`:
- raw: [B, H, W, 1] Bayer mosaic in [0, 1] (phase `pattern`, default "BGGR", the release's); H and W even (and
  divisible by what the model's poolings need: 4 for the release Anscombe network, 32 for the Chen U-Net);
- alpha, sigma: [B], the Poisson scale and Gaussian std of each image (in [0, 1] units), or [B, 3], one per colour
  R, G, B (a white-balanced real capture: data/camera_raw.py; the Anscombe layers divide each colour by its own
  alpha, layers/anscombe.py; where a single noise level is fed to a network, it is the mean over the colours);
- psf: [B, kh, kw, 3] or [B, kh, kw, 1] per-image PSFs, only for the ISPs that deblur with a PSF given at run time.
The output is always a dict (`Isp.output_names`): "image", the linear colour image [B, H, W, 3] in about [0, 1]
(not clipped), plus the ISP's own extra outputs (`NidfCascade`: "denoised"). What differs per ISP is carried by
its class, so that training, evaluation and export need no per-model branches: `takes_psf` (a per-image PSF
input), `output_names`, `pretraining_loss` (its stage-1 reconstruction loss, a training/losses.py kind) and
`pretraining_model(image_size)` (the model stage 1 trains; by default the ISP model itself).

The models of the papers:
- AnscombeNetwork (Diamond et al. 2021, Algorithm 1): GAT + max-normalization, N unrolled iterations of (residual U-Net prior,
  soft projection onto the mosaic), inverse GAT; by default computing what the release's nets/isp.py computes (GAT
  over S^T y, algebraic inverse, learned lambda and beta), so its TF1 checkpoints load (models/tf1_checkpoints.py).
  Ablations of Diamond et al. 2021 Table 2 are settings: anscombe=False (no Anscombe layers: the iterations run on the RAW
  values, and the noise channel carries sigma).
- ChenUNet: the U-Net of Chen et al. 2018 on the packed Bayer image (Diamond et al. 2021 Table 1 baseline); anscombe=True
  wraps it in Anscombe layers ("U-Net + Anscombe layers", Diamond et al. 2021 Table 2).
- ShrinkageFieldsISP (Diamond et al. 2017 Sec. 5.4-5.5): bilinear demosaicking, then shrinkage fields: for denoising inside
  the Anscombe sandwich (Fig. 7); for joint deblurring and denoising with a known PSF on the demosaicked image with
  the noise taken as Gaussian (no GAT, which would make the blur nonlinear). Diamond et al. 2017 worked on full-colour images
  without a mosaic; the bilinear demosaic in front is this package's addition so it takes RAW like the others.
- LiuDenoiser (Liu et al. 2018, Sec. 2.1): bilinear demosaicking, then the 3-scale encoder/decoder denoiser.
- NidfCascade (Miao and Zhu, NIDF): bilinear demosaicking, then a denoising U-Net and a deblurring U-Net in cascade.
- BilinearIsp: demosaicking only, the input of "from scratch on RAW" classifiers.
"""

import keras
import tensorflow as tf

from dirtypixels_tf.layers.anscombe import GeneralizedAnscombe, InverseAnscombe, append_noise_channel
from dirtypixels_tf.layers.bayer import BilinearDemosaic, MosaicAdjoint, PackBayer
from dirtypixels_tf.layers.priors import (
    DEFAULT_PRIOR,
    LiuDecodingModule,
    LiuEncodingModule,
    NidfUNet,
    prior_class,
)
from dirtypixels_tf.layers.projection import SoftProjection, release_gamma_inits
from dirtypixels_tf.layers.shrinkage import ShrinkageFields
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.physics import mosaic
from dirtypixels_tf.physics.validation import check_bool, check_image, check_int, check_positive_number

INITIALIZATIONS = ("adjoint", "bilinear")


def _check_raw(raw):
    raw = check_image(raw, "raw", channels=1)
    height, width = raw.shape[1], raw.shape[2]
    if height is not None and width is not None and (height % 2 or width % 2):
        raise ValueError(f"raw must have even height and width for a Bayer mosaic; received shape {raw.shape}")
    return raw


def image_noise_level(value, dtype):
    """One noise level per image [B] from alpha or sigma given per image [B] or per colour [B, 3] (their mean)."""
    value = tf.cast(value, dtype)
    return tf.reduce_mean(value, axis=-1) if value.shape.rank == 2 else value


def _check_no_psf(psf, isp):
    if psf is not None:
        raise ValueError(f"psf is only taken by ISPs that deblur; {type(isp).__name__} received a psf")


class Isp(keras.layers.Layer):
    """Base class of the ISPs: the Bayer pattern, the per-ISP contract (module docstring) and a build that creates
    every sub-layer's weights. Subclasses implement `call(raw, alpha, sigma, psf=None, training=False)` returning
    {name: tensor for name in output_names}."""

    takes_psf = False
    output_names = ("image",)
    pretraining_loss = "l1"
    pretraining_outputs = None  # None: stage 1 trains the model itself; else the outputs of pretraining_model

    def pretraining_model(self, image_size, psf_size=None):
        """The model stage 1 trains with `pretraining_loss` (see pretraining_outputs): by default the ISP alone."""
        return IspModel(self, image_size, psf_size)

    def load_pretrained(self, stage_model):
        """Copy this ISP's weights from a trained stage-1 model (one holding a layer named "isp"); raises ValueError
        naming what is missing or does not fit."""
        if "isp" not in {layer.name for layer in stage_model.layers}:
            raise ValueError(f"the stage-1 model {stage_model.name!r} has no layer named 'isp'")
        copy_weights(stage_model.get_layer("isp"), self)

    def __init__(self, pattern=mosaic.RELEASE_PATTERN, **kwargs):
        super().__init__(**kwargs)
        self.pattern = mosaic.check_pattern(pattern)

    def build(self, raw_shape, alpha_shape=None, sigma_shape=None, psf_shape=None):
        """Run `call` once on a dark frame of one image, which builds each sub-layer at its input size (Keras
        builds sub-layers at their first call; a loaded model needs them built before its weights go in)."""
        raw = tf.zeros([1, *raw_shape[1:]])
        if psf_shape is None:
            self.call(raw, tf.ones([1]), tf.ones([1]))
        else:
            psf = tf.ones([1, *psf_shape[1:]]) / float(psf_shape[1] * psf_shape[2])
            self.call(raw, tf.ones([1]), tf.ones([1]), psf)

    def get_config(self):
        return {**super().get_config(), "pattern": self.pattern}


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class BilinearIsp(Isp):
    """Bilinear demosaicking only; no weights. The noise level is not used."""

    def __init__(self, pattern=mosaic.RELEASE_PATTERN, **kwargs):
        super().__init__(pattern, **kwargs)
        self.demosaic = BilinearDemosaic(pattern, name="demosaic")

    def call(self, raw, alpha=None, sigma=None, psf=None, training=False):
        _check_no_psf(psf, self)
        return {"image": self.demosaic(_check_raw(raw))}


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class AnscombeNetwork(Isp):
    """Diamond et al. 2021, Algorithm 1, in the configuration of the authors' release by default.

    1. The GAT and its per-image max-normalization (noise std k). anscombe_input="adjoint" (release): of the
       3-channel S^T y (zeros at the unmeasured colours), so min and max run over that image and min D <= D(0);
       x_0 is that normalized 3-channel image itself (its unmeasured entries hold (D(0) - min D) k). "mosaic"
       (the paper's A = S): of the mosaic's pixels only, and x_0 = S^T D' (initialization="adjoint") or the
       bilinear demosaic of D' ("bilinear", only with anscombe_input="mosaic").
    2. for k < iterations: v = prior_k([x_k, noise channel]) (a residual U-Net returning x_k - r),
       x_{k+1} = soft projection of v onto the measured (normalized) mosaic, gamma_k = beta_k / lambda.
       scalars="release": one shared `lambda` (weight "isp/lambda", init lambda_init = 1.0) and one beta per
       iteration (weight "projection_k/beta", init gamma_inits[k] * lambda_init = 2, 4, 8, ...); "log_gamma": one
       log(gamma) per iteration. Same function at initialization; different optimization.
    3. The inverse GAT of x_N: algebraic (unbiased_inverse=False, the release's joint models) or the closed-form
       unbiased inverse (True).
    With anscombe=False (the ablation) steps 1 and 3 are skipped: the iterations run on the RAW values in [0, 1]
    (x_0 = S^T y) and the noise channel carries sigma. first_conv: "dilated" (release) or "strided" (paper text)
    for the priors. domain="packed" (this package's mobile variant, beyond the papers): each prior runs at half
    resolution on the packed image, space_to_depth(x_k) [B, H/2, W/2, 12] plus the noise channel, and returns 12
    channels that depth_to_space unpacks to [B, H, W, 3] before the same soft projection; its U-Net has
    prior_width channels at the top (8 for the preset; None: the release's rule, 26 for 13 inputs) and H, W must be
    divisible by 2^levels. prior: the name of the prior in layers/priors.PRIORS ("residual_unet", the release's).
    The release trains with iterations=1 (its code default is 4). The output is not clipped (the joint model clips
    it before the head, joint.py).
    """

    ANSCOMBE_INPUTS = ("adjoint", "mosaic")
    SCALARS = ("release", "log_gamma")
    DOMAINS = ("full", "packed")

    def __init__(
        self,
        iterations=1,
        pattern=mosaic.RELEASE_PATTERN,
        anscombe=True,
        unbiased_inverse=False,
        initialization="adjoint",
        first_conv="dilated",
        levels=3,
        gamma_inits=None,
        trainable_gamma=True,
        anscombe_input="adjoint",
        scalars="release",
        lambda_init=1.0,
        domain="full",
        prior_width=None,
        prior=DEFAULT_PRIOR,
        **kwargs,
    ):
        super().__init__(pattern, **kwargs)
        self.iterations = check_int(iterations, "iterations")
        self.prior = prior
        prior_type = prior_class(prior)
        self.anscombe = check_bool(anscombe, "anscombe")
        self.unbiased_inverse = check_bool(unbiased_inverse, "unbiased_inverse")
        if initialization not in INITIALIZATIONS:
            raise ValueError(f"initialization must be one of {', '.join(INITIALIZATIONS)}; received {initialization!r}")
        if anscombe_input not in self.ANSCOMBE_INPUTS:
            raise ValueError(f"anscombe_input must be one of {self.ANSCOMBE_INPUTS}; received {anscombe_input!r}")
        if initialization == "bilinear" and anscombe_input == "adjoint":
            raise ValueError(
                "initialization='bilinear' needs anscombe_input='mosaic' (with 'adjoint' x_0 is the transformed "
                f"S^T y); received initialization={initialization!r}, anscombe_input={anscombe_input!r}"
            )
        if scalars not in self.SCALARS:
            raise ValueError(f"scalars must be one of {self.SCALARS}; received {scalars!r}")
        if domain not in self.DOMAINS:
            raise ValueError(f"domain must be one of {self.DOMAINS}; received {domain!r}")
        self.domain = domain
        self.prior_width = None if prior_width is None else check_int(prior_width, "prior_width", 2)
        self.initialization = initialization
        self.anscombe_input = anscombe_input
        self.scalars = scalars
        self.lambda_init = check_positive_number(lambda_init, "lambda_init")
        self.first_conv = first_conv
        self.levels = levels
        gamma_inits = release_gamma_inits(self.iterations) if gamma_inits is None else list(gamma_inits)
        if len(gamma_inits) != self.iterations:
            raise ValueError(f"gamma_inits must have one value per iteration ({iterations}); received {gamma_inits!r}")
        self.gamma_inits = gamma_inits
        self.trainable_gamma = trainable_gamma
        if self.anscombe:
            self.forward = GeneralizedAnscombe(normalize=True, noise_channel=False, pattern=pattern, name="anscombe")
            self.inverse = InverseAnscombe(unbiased=unbiased_inverse, pattern=pattern, name="inverse_anscombe")
        self.initial = (MosaicAdjoint if initialization == "adjoint" else BilinearDemosaic)(pattern, name="initial")
        self.priors = [
            prior_type(
                output_channels=3 if domain == "full" else 12,
                levels=levels,
                first_conv=first_conv,
                width=self.prior_width,
                name=f"prior_{k}",
            )
            for k in range(self.iterations)
        ]
        release = scalars == "release"
        self.projections = [
            SoftProjection(
                "mosaic",
                pattern,
                gamma_init=gamma * self.lambda_init if release else gamma,
                trainable_gamma=trainable_gamma,
                parameterization="beta" if release else "log_gamma",
                name=f"projection_{k}",
            )
            for k, gamma in enumerate(gamma_inits)
        ]
        self.lam = None

    def build(self, raw_shape, alpha_shape=None, sigma_shape=None, psf_shape=None):
        if self.scalars == "release":
            self.lam = self.add_weight(
                name="lambda",
                shape=(),
                initializer=keras.initializers.Constant(self.lambda_init),
                trainable=self.trainable_gamma,
                dtype="float32",
                autocast=False,
            )
        super().build(raw_shape, alpha_shape, sigma_shape, psf_shape)

    def transform(self, raw, alpha, sigma):
        """Step 1: (x_0 [B, H, W, 3], the measured mosaic y [B, H, W, 1], noise std [B], the GAT dict or None)."""
        raw = _check_raw(raw)
        if not self.anscombe:
            return self.initial(raw), raw, image_noise_level(sigma, raw.dtype), None
        if self.anscombe_input == "adjoint":
            transformed = self.forward(self.initial(raw), alpha, sigma)
            x = transformed["image"]
            return x, mosaic.mosaic(x, self.pattern), transformed["scale"], transformed
        transformed = self.forward(raw, alpha, sigma)
        y = transformed["image"]
        return self.initial(y), y, transformed["scale"], transformed

    def call(self, raw, alpha, sigma, psf=None, training=False):
        _check_no_psf(psf, self)
        x, y, noise_std, transformed = self.transform(raw, alpha, sigma)
        lam = {"lam": self.lam} if self.scalars == "release" else {}
        for prior, projection in zip(self.priors, self.projections):
            v = self._prior_step(prior, x, tf.cast(noise_std, x.dtype), training)
            x = projection(v, tf.cast(y, v.dtype), **lam)
        if transformed is None:
            return {"image": x}
        return {"image": self.inverse(x, alpha, sigma, transformed["scale"], transformed["offset"])}

    def _prior_step(self, prior, x, noise_std, training):
        """v = prior([x, noise channel]), at full resolution or on the packed 2x2 blocks (domain="packed")."""
        if self.domain == "full":
            return prior(append_noise_channel(x, noise_std), training=training)
        packed = tf.nn.space_to_depth(x, 2)
        return tf.nn.depth_to_space(prior(append_noise_channel(packed, noise_std), training=training), 2)

    def get_config(self):
        return {
            **super().get_config(),
            "domain": self.domain,
            "prior": self.prior,
            "prior_width": self.prior_width,
            "iterations": self.iterations,
            "anscombe": self.anscombe,
            "unbiased_inverse": self.unbiased_inverse,
            "initialization": self.initialization,
            "first_conv": self.first_conv,
            "levels": self.levels,
            "gamma_inits": self.gamma_inits,
            "trainable_gamma": self.trainable_gamma,
            "anscombe_input": self.anscombe_input,
            "scalars": self.scalars,
            "lambda_init": self.lambda_init,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class ChenUNet(Isp):
    """The U-Net of Chen et al. 2018 ("Learning to see in the dark"), the baseline ISP of Diamond et al. 2021 Table 1.

    Packed Bayer input [B, H/2, W/2, 4]; 5 levels of two 3x3 convolutions (32, 64, 128, 256, 512 channels, leaky
    ReLU with slope 0.2), 2x2 max pooling down, 2x2 stride-2 transposed convolutions (no bias) up concatenated with
    the encoder's features, a 1x1 convolution to 12 channels and depth-to-space to [B, H, W, 3]. H and W must be
    divisible by 32. 7,760,268 parameters at base_filters=32 (+ 4.23 M of MobileNet-v1 = the 11.99 M of Diamond et al. 2021).
    anscombe=True: the U-Net runs on the max-normalized GAT of the mosaic and the inverse GAT maps its output back.
    """

    def __init__(self, pattern=mosaic.RELEASE_PATTERN, base_filters=32, anscombe=False, **kwargs):
        super().__init__(pattern, **kwargs)
        self.base_filters = check_int(base_filters, "base_filters")
        self.anscombe = check_bool(anscombe, "anscombe")
        if self.anscombe:
            self.forward = GeneralizedAnscombe(normalize=True, noise_channel=False, pattern=pattern, name="anscombe")
            self.inverse = InverseAnscombe(unbiased=True, pattern=pattern, name="inverse_anscombe")
        self.pack = PackBayer(name="pack")
        widths = [base_filters * 2**level for level in range(5)]

        def conv(filters, name, size=3):
            return keras.layers.Conv2D(filters, size, padding="same", name=name, dtype=self.dtype_policy)

        # Layer names follow Chen et al.'s code: conv1..conv5 down, up6..up9 and conv6..conv9 up, conv10 out.
        self.down_convs = [
            conv(w, f"conv{i // 2 + 1}_{i % 2 + 1}") for i, w in enumerate(w for w in widths for _ in (0, 1))
        ]
        up_widths = widths[-2::-1]
        self.upsamples = [
            keras.layers.Conv2DTranspose(w, 2, strides=2, use_bias=False, name=f"up{6 + i}", dtype=self.dtype_policy)
            for i, w in enumerate(up_widths)
        ]
        self.up_convs = [
            conv(w, f"conv{i // 2 + 6}_{i % 2 + 1}") for i, w in enumerate(w for w in up_widths for _ in (0, 1))
        ]
        self.output_conv = conv(12, "conv10", size=1)
        self.pool = keras.layers.MaxPooling2D(2, name="pool")

    @staticmethod
    def _two_convs(x, first, second):
        return tf.nn.leaky_relu(second(tf.nn.leaky_relu(first(x), 0.2)), 0.2)

    def call(self, raw, alpha=None, sigma=None, psf=None, training=False):
        _check_no_psf(psf, self)
        raw = _check_raw(raw)
        for axis in (1, 2):
            if raw.shape[axis] is not None and raw.shape[axis] % 32:
                raise ValueError(
                    f"raw height and width must be divisible by 32 for ChenUNet; received shape {raw.shape}"
                )
        if self.anscombe:
            transformed = self.forward(raw, alpha, sigma)
            raw = transformed["image"]
        x = self.pack(raw)
        skips = []
        for level in range(5):
            if level:
                x = self.pool(x)
            x = self._two_convs(x, *self.down_convs[2 * level : 2 * level + 2])
            skips.append(x)
        for level, skip in enumerate(skips[-2::-1]):
            x = tf.concat([self.upsamples[level](x), skip], axis=-1)
            x = self._two_convs(x, *self.up_convs[2 * level : 2 * level + 2])
        image = tf.nn.depth_to_space(self.output_conv(x), 2)
        if not self.anscombe:
            return {"image": image}
        return {"image": self.inverse(image, alpha, sigma, transformed["scale"], transformed["offset"])}

    def get_config(self):
        return {**super().get_config(), "base_filters": self.base_filters, "anscombe": self.anscombe}


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class ShrinkageFieldsIsp(Isp):
    """Diamond et al. 2017's low-level unit on RAW input: bilinear demosaicking, then shrinkage fields.

    task="denoise": GAT (no normalization) -> shrinkage fields with A = I -> inverse GAT (Diamond et al. 2017 Fig. 7).
    task="deblur_denoise": shrinkage fields with A = k* on the demosaicked image (the noise taken as Gaussian),
    with the PSF fixed at construction (`psf`) or given per image at call time. The other settings are
    ShrinkageFields' (24 filters of 5x5 and the CNN proximal operator by default; merge_channels defaults to
    False for denoising and True for deblurring, as in Diamond et al. 2017 Sec. 7).
    """

    TASKS = ("denoise", "deblur_denoise")

    def __init__(
        self,
        task="denoise",
        pattern=mosaic.RELEASE_PATTERN,
        stages=1,
        num_filters=24,
        filter_size=5,
        proximal="cnn",
        merge_channels=None,
        psf=None,
        **kwargs,
    ):
        super().__init__(pattern, **kwargs)
        if task not in self.TASKS:
            raise ValueError(f"task must be one of {', '.join(self.TASKS)}; received {task!r}")
        self.task = task
        self.takes_psf = task == "deblur_denoise" and psf is None
        self.stages, self.num_filters, self.filter_size, self.proximal = stages, num_filters, filter_size, proximal
        self.merge_channels = (task == "deblur_denoise") if merge_channels is None else merge_channels
        self.psf = psf
        self.demosaic = BilinearDemosaic(pattern, name="demosaic")
        if task == "denoise":
            self.forward = GeneralizedAnscombe(normalize=False, noise_channel=False, pattern=pattern, name="anscombe")
            self.inverse = InverseAnscombe(unbiased=True, pattern=pattern, name="inverse_anscombe")
        self.shrinkage = ShrinkageFields(
            num_stages=stages,
            num_filters=num_filters,
            filter_size=filter_size,
            proximal=proximal,
            merge_channels=self.merge_channels,
            operator="identity" if task == "denoise" else "blur",
            psf=psf,
            name="shrinkage_fields",
        )

    def call(self, raw, alpha=None, sigma=None, psf=None, training=False):
        raw = _check_raw(raw)
        if self.task == "deblur_denoise":
            return {"image": self.shrinkage(self.demosaic(raw), psf)}
        transformed = self.forward(raw, alpha, sigma)["image"]
        return {"image": self.inverse(self.shrinkage(self.demosaic(transformed)), alpha, sigma)}

    def get_config(self):
        psf = None if self.psf is None else tf.convert_to_tensor(self.psf).numpy().tolist()
        return {
            **super().get_config(),
            "task": self.task,
            "stages": self.stages,
            "num_filters": self.num_filters,
            "filter_size": self.filter_size,
            "proximal": self.proximal,
            "merge_channels": self.merge_channels,
            "psf": psf,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class LiuDenoiser(Isp):
    """The denoiser of Liu et al. 2018 (Sec. 2.1, Fig. 2a) after bilinear demosaicking.

    Three scales: an encoding module at each (128 channels by default); stride-2 3x3 convolutions (+ batch norm +
    ReLU, keeping the width) down; 4x4 stride-2 transposed convolutions (+ batch norm + ReLU, keeping the width) up,
    each fused with the finer scale's encoding by a decoding module (256 channels); a linear 3x3 convolution to 3
    channels, added to the demosaicked input (the long skip). H and W must be divisible by 4.
    """

    def __init__(self, pattern=mosaic.RELEASE_PATTERN, encoder_filters=128, decoder_filters=256, **kwargs):
        super().__init__(pattern, **kwargs)
        self.encoder_filters = check_int(encoder_filters, "encoder_filters")
        self.decoder_filters = check_int(decoder_filters, "decoder_filters")
        policy = dict(dtype=self.dtype_policy)
        self.demosaic = BilinearDemosaic(pattern, name="demosaic")
        self.encoders = [
            LiuEncodingModule(encoder_filters, encoder_filters // 4, name=f"encode_{s}", **policy) for s in range(3)
        ]
        self.decoders = [
            LiuDecodingModule(decoder_filters, decoder_filters // 4, name=f"decode_{s}", **policy) for s in range(2)
        ]

        def strided(layer_class, filters, kernel, name):
            return layer_class(filters, kernel, strides=2, padding="same", use_bias=False, name=name, **policy)

        # down_s: scale s -> s + 1; up_0 upsamples the coarsest encoding, up_1 the fused middle scale.
        self.downs = [strided(keras.layers.Conv2D, encoder_filters, 3, f"down_{s}") for s in range(2)]
        self.ups = [
            strided(keras.layers.Conv2DTranspose, filters, 4, f"up_{s}")
            for s, filters in enumerate((encoder_filters, decoder_filters))
        ]
        self.norms = [
            keras.layers.BatchNormalization(name=f"{layer.name}_bn", **policy) for layer in self.downs + self.ups
        ]
        self.output_conv = keras.layers.Conv2D(3, 3, padding="same", name="output", **policy)

    def call(self, raw, alpha=None, sigma=None, psf=None, training=False):
        _check_no_psf(psf, self)
        raw = _check_raw(raw)
        for axis in (1, 2):
            if raw.shape[axis] is not None and raw.shape[axis] % 4:
                raise ValueError(f"raw height and width must be divisible by 4 for LiuDenoiser; received {raw.shape}")
        image = self.demosaic(raw)
        x = tf.cast(image, self.compute_dtype)
        encoded = []
        for scale, encoder in enumerate(self.encoders):
            if scale:
                x = tf.nn.relu(self.norms[scale - 1](self.downs[scale - 1](x), training=training))
            x = encoder(x, training=training)
            encoded.append(x)
        for step, (decoder, skip) in enumerate(zip(self.decoders[::-1], encoded[-2::-1])):
            x = tf.nn.relu(self.norms[2 + step](self.ups[step](x), training=training))
            x = decoder(x, skip, training=training)
        return {"image": tf.cast(self.output_conv(x), image.dtype) + image}

    def get_config(self):
        return {
            **super().get_config(),
            "encoder_filters": self.encoder_filters,
            "decoder_filters": self.decoder_filters,
        }


@keras.saving.register_keras_serializable(package="dirtypixels_tf")
class NidfCascade(Isp):
    """NIDF (Miao and Zhu): bilinear demosaicking, a denoising U-Net, then a deblurring U-Net of the same architecture.

    Returns {"image": the deblurred image I1, "denoised": the denoiser's output B1}, both [B, H, W, 3], so the
    joint loss ||B - B1||^2 + 0.5 ||I - I1||^2 (Eq. 5) can be applied. unet_options go to both NidfUNets.
    """

    output_names = ("image", "denoised")
    pretraining_loss = "nidf_pretrain"
    pretraining_outputs = ("denoised", "deblurred")

    def __init__(self, pattern=mosaic.RELEASE_PATTERN, unet_options=None, **kwargs):
        super().__init__(pattern, **kwargs)
        if unet_options is not None and not isinstance(unet_options, dict):
            raise ValueError(f"unet_options must be a dict of NidfUNet arguments; received {unet_options!r}")
        self.unet_options = dict(unet_options or {})
        self.demosaic = BilinearDemosaic(pattern, name="demosaic")
        self.denoiser = NidfUNet(name="denoiser", dtype=self.dtype_policy, **self.unet_options)
        self.deblurrer = NidfUNet(name="deblurrer", dtype=self.dtype_policy, **self.unet_options)

    def call(self, raw, alpha=None, sigma=None, psf=None, training=False):
        _check_no_psf(psf, self)
        image = self.demosaic(_check_raw(raw))
        denoised = self.denoiser(tf.cast(image, self.compute_dtype), training=training)
        return {"image": self.deblurrer(denoised, training=training), "denoised": denoised}

    def pretraining_model(self, image_size, psf_size=None):
        """NIDF's pretraining (Eq. 3 and 4): {"raw", "alpha", "sigma", "blurred" [B, H, W, 3]} -> {"denoised":
        denoiser(demosaic(raw)), "deblurred": deblurrer(blurred)}, built from this cascade's own sub-layers."""
        height, width = image_size
        inputs = {
            "raw": keras.Input((height, width, 1), name="raw"),
            "alpha": keras.Input((), name="alpha"),
            "sigma": keras.Input((), name="sigma"),
            "blurred": keras.Input((height, width, 3), name="blurred"),
        }
        denoised = self.denoiser(self.demosaic(inputs["raw"]))
        deblurred = self.deblurrer(inputs["blurred"])
        return keras.Model(inputs, {"denoised": denoised, "deblurred": deblurred}, name="nidf_pretraining")

    def load_pretrained(self, stage_model):
        """From a NIDF pretraining model (its "denoiser" and "deblurrer" layers) or a model holding the cascade."""
        names = {layer.name for layer in stage_model.layers}
        if "isp" in names or not {"denoiser", "deblurrer"} <= names:
            return super().load_pretrained(stage_model)
        for part in ("denoiser", "deblurrer"):
            copy_weights(stage_model.get_layer(part), getattr(self, part))

    def get_config(self):
        return {**super().get_config(), "unet_options": self.unet_options}


ISP_CLASSES = {
    "anscombe": AnscombeNetwork,
    "bilinear": BilinearIsp,
    "chen_unet": ChenUNet,
    "shrinkage_fields": ShrinkageFieldsIsp,
    "liu": LiuDenoiser,
    "nidf": NidfCascade,
}


def build_isp(name, **settings):
    """The ISP layer called `name` (ISP_CLASSES) with its settings; unknown names list the valid ones."""
    if name not in ISP_CLASSES:
        raise ValueError(f"isp must be one of {', '.join(ISP_CLASSES)}; received {name!r}")
    return ISP_CLASSES[name](name="isp", **settings)


def copy_weights(source, target):
    """Copy the weights of layer `source` into layer `target`; ValueError when their shapes differ."""
    weights = source.get_weights()
    if len(weights) != len(target.weights) or any(a.shape != tuple(b.shape) for a, b in zip(weights, target.weights)):
        raise ValueError(
            f"the stage-1 layer {source.name!r} has weights of shapes {[w.shape for w in weights]}, which do not "
            f"fit this model's layer {target.name!r} ({[tuple(w.shape) for w in target.weights]})"
        )
    target.set_weights(weights)
