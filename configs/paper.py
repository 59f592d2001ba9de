"""The paper's settings (RS-Net, BraTS 2017 protocol) at full resolution, every knob documented:
what to use to reproduce the paper's tables (configs/experiments/table*.py start from it). What the
paper leaves open (eq. 4's reading, eq. 3's rep and decay rate, the encoder's step index) is our
reading, said where it is set. configs/default.py starts from it and departs where we measured
that the paper's settings do not learn here.

Run: python -m rsnet_jax.main --config configs/paper.py --workdir runs/paper \
       --config.data.data_dir=/path/to/BraTS2017_Training
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # parameters, data order and dropout masks all derive from it
  config.compilation_cache_dir = ''  # jax persistent compilation cache ('' = off): reruns and
  #   resumed runs skip recompiling
  config.memory_budget_gib = 0.0  # what a compiled step or MC prediction may plan for; 0 = 90 % of
  #   a GPU/TPU's memory, 50 % of the RAM on the CPU (rsnet_jax/runtime/memory.py)

  config.model = ml_collections.ConfigDict()
  config.model.variant = 'rsnet'  # 'rsnet' | 'rnet' (regression only) | 'snet' (segmentation only)
  #   | 'anyseq' (ours: one RS-Net for whichever sequence is missing, rsnet_jax/data/anyseq.py)
  config.model.base_filters = 4  # k
  config.model.num_levels = 4  # U-Net resolution steps
  config.model.num_classes = 4  # background, necrotic/non-enhancing core, edema, enhancing
  config.model.dropout_rate = 0.1
  config.model.instance_norm_affine = False  # learnable scale/offset in instance norm
  config.model.remat = 'none'  # recompute in the backward pass: 'none' | 'levels' (keep only the
  #   inputs of the start block, each U-Net level and each head) | 'convs' (keep conv outputs)
  config.model.dtype = 'float32'  # compute dtype: 'float32' | 'bfloat16' (parameters, loss and
  #   outputs stay float32)
  config.model.conv_impl = 'auto'  # 3x3x3 convs: 'auto' ('fold' on the CPU backend, 'xla'
  #   elsewhere) | 'xla' (XLA's 3D conv) | 'fold' (2D convs, depth taps on the channel axis) |
  #   'fold_sum' (three accumulated 2D convs); same parameters, same values to float32 round-off
  config.model.activation = 'relu'  # after every hidden conv: 'relu' (the paper's) | 'leaky_relu'
  #   (ours, slope 0.1: no unit of the heads' narrow layers can die; same parameters)
  config.model.norm = 'paper'  # instance norm: 'paper' (after each encoder step's pool and each
  #   decoder concatenation) | 'every_conv' (ours: also after every 3x3x3 conv, before its
  #   activation, as MONAI's BasicUNet does; affine where instance_norm_affine)
  config.model.filters = ()  # the U-Net's width at resolution 1 / 2**n, n = 0..num_levels: () is
  #   the paper's k * 2**n; e.g. (8, 16, 32, 48, 64), BasicUNet's (ours)
  config.model.upsample_kernel = 5  # the decoder's stride-2 transposed conv: 5 (the paper's
  #   5x5x5) | 2 (ours: 2x2x2, as BasicUNet; 1/16 of its parameters)
  config.model.pool_first = False  # encoder steps: two convs, then max-pool (the paper's) | True
  #   (ours: max-pool, then the two convs, as BasicUNet; same parameters, convs at half the
  #   resolution, and the deepest level gets convs)
  config.model.segmentation_head = 'paper'  # its layers: 'paper' (conv3 4k, conv1 2k, conv1 k,
  #   conv1 out) | 'linear' (ours: one 1x1x1 conv from the U-Net's features, as BasicUNet's last
  #   layer)
  config.model.regression_head = 'paper'  # the same for the synthesis (its input: the U-Net's
  #   features and the complementary sequence)
  config.model.ensemble_size = 1  # K > 1: a deep ensemble of K networks, parameters stacked on a
  #   leading axis and trained together by one vmapped step, member k initialised from
  #   split(key, K)[k]; predictions pool the members like MC samples (docs/uncertainty.md)

  config.data = ml_collections.ConfigDict()
  config.data.data_dir = ''  # folder of BraTS case folders; '' = synthetic cases in WORKDIR/data
  config.data.layout = 'auto'  # 'auto' (BraTS 2015 / 2017-2021 / 2023) | a layout's name | 'custom'
  config.data.custom_files = ml_collections.ConfigDict(
      {k: '' for k in ('t1', 't1ce', 't2', 'flair', 'seg')})  # 'custom': file pattern per
  #   modality relative to the case folder, e.g. '{case}_T1w.nii.gz' or 'anat/*_T1w.nii.gz'
  config.data.custom_labels = (0, 1, 2, 4)  # 'custom': label values, background first
  config.data.modalities = ('t1', 't1ce', 't2', 'flair')  # the sequences a case has
  config.data.target = 'flair'  # the missing sequence to synthesize: t1 | t1ce | t2 | flair
  config.data.inputs = ()  # () = every modality but the target (all four for snet)
  config.data.complementary = ''  # '' = the paper's: t1<-t1ce, t2<-flair, t1ce<-t1, flair<-t2
  config.data.missing_probabilities = ()  # anyseq: how often each of data.modalities is the one
  #   drawn missing in training; () = uniform
  config.data.normalization = 'brats2017'  # 'brats2017' | 'brats2015' | 'none'
  config.data.crop_shape = (184, 200, 152)  # () = whole volume (padded to 2**num_levels)
  config.data.target_spacing = ()  # mm per voxel (L, P, S) the model learns on; () = the median of
  #   the training cases' spacings (BraTS: 1 mm). Recorded in WORKDIR/grid.json; cases at other
  #   spacings are resampled to it as they are read (docs/data.md, "Voxel sizes")
  config.data.resample_order = 3  # spline order of the images' resampling (labels: nearest)
  config.data.val_fraction = 0.2  # the paper: 228 train / 57 validation of 285
  config.data.test_fraction = 0.0  # the paper tests on the separate BraTS validation set
  config.data.split_seed = 0
  config.data.skip_invalid = False  # True: leave invalid cases out (listed) instead of refusing
  config.data.worker_count = 0  # Grain worker processes (0 = load in background threads)
  config.data.synthetic_cases = 20  # cases generated when data_dir is ''
  config.data.synthetic_shape = (240, 240, 155)
  config.data.synthetic_layout = 'brats2021'
  config.data.synthetic_pathology = 'glioma'  # 'glioma' (BraTS-like) | 'ms' (white-matter lesions,
  #   T1/T2/FLAIR/PD at 1 x 1 x 3 mm: set data.modalities and model.num_classes=2 to match)
  config.data.synthetic_variability = 'classic'  # ranges of anatomy and contrasts: 'classic'
  #   (the demo's cohort) | 'wide' (as real cohorts vary) | 'physics' (contrasts from MR signal
  #   equations over per-case tissue parameters) | 'mixed' (half each; docs/data.md, "Synthetic
  #   cases")

  config.loss = ml_collections.ConfigDict()
  # Eq. 4's weights. The paper: "lambda1 and lambda2 ..., to combine CCE and MSE, were fixed to 1.0
  # and 0.1 respectively"; we read it as CCE 1.0 and MSE 0.1. The other reading (MSE 1.0, CCE 0.1)
  # starves the segmentation head: an RS-Net then does not even overfit two cases
  # (docs/training.md, "Learning notes").
  config.loss.lambda_synthesis = 0.1  # on W-MSE
  config.loss.lambda_segmentation = 1.0  # on W-CCE
  config.loss.lambda_dice = 0.0  # a soft Dice term on the logits (not the paper's; 0 = off)
  config.loss.region = 'volume'  # voxels eq. 4 averages over: 'volume' (the paper's: the whole
  #   crop) | 'brain' (ours: voxels non-zero in some input; predictions outside are background / 0)
  config.loss.rep = 0.1  # eq. 3 (not given in the paper; 1.0 gives rare classes weights ~5000)
  config.loss.decay_rate = 0.95  # r: per-epoch decay of the class weights towards 1 (not given)

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 2e-4
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.lr_scaling = 'none'  # larger global batches: 'none' | 'linear' | 'sqrt' (learning
  #   rate x (global batch / base_batch_size), or its square root)
  config.optim.base_batch_size = 1  # the global batch optim.learning_rate was tuned for
  config.optim.warmup_steps = 0  # ours, not the paper's: linear warm-up from 0 over N steps
  config.optim.schedule = 'constant'  # 'constant' (the paper's) | 'cosine' (ours: decays to
  #   optim.end_lr_fraction x the rate at the last step)
  config.optim.end_lr_fraction = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.donate_state = True  # the step reuses the train state's buffers in place
  config.train.batch_size = 1  # per device: the global batch is this x every device of every process
  config.train.num_epochs = 240
  config.train.log_every_steps = 50
  config.train.eval_every_epochs = 1
  config.train.max_checkpoints = 3  # the latest N, plus the best by validation loss
  config.train.checkpoint_every_steps = 0  # also save every N steps (0: only at evaluations)
  config.train.nonfinite = 'stop'  # non-finite loss/gradient: 'stop' (keep the last good
  #   checkpoint, exit 3) or 'skip' (drop that update and go on)
  config.train.min_free_disk_factor = 3.0  # refuse to start without room for this many checkpoints
  config.train.predict_test_cases = False  # after training, predict the test split
  config.train.profile_steps = 0  # > 0: jax.profiler trace of that many steps into WORKDIR/profile

  config.augment = ml_collections.ConfigDict()  # ours, not the paper's: training-time
  #   augmentation (rsnet_jax/data/augment.py, docs/training.md); every probability 0 = off
  config.augment.mirror_probability = 0.0  # per axis
  config.augment.rotate_probability = 0.0
  config.augment.rotate_degrees = 10.0  # per axis, uniform in +-this
  config.augment.scale_probability = 0.0
  config.augment.scale_range = (0.9, 1.1)  # isotropic zoom factor
  config.augment.elastic_probability = 0.0
  config.augment.elastic_magnitude = 2.0  # voxels: std of the smoothed displacement
  config.augment.elastic_sigma = 4.0  # voxels: Gaussian smoothing of the displacement noise
  config.augment.curve_probability = 0.0  # per sequence: a random monotone intensity curve
  config.augment.curve_knots = 4  # inner knots of the piecewise-linear curve
  config.augment.curve_strength = 0.6  # segment slopes uniform in 1 +- this (< 1), then rescaled
  config.augment.gamma_probability = 0.0  # per sequence
  config.augment.gamma_range = (0.7, 1.5)  # on intensities rescaled to [0, 1] inside the brain
  config.augment.contrast_probability = 0.0  # per sequence
  config.augment.contrast_range = (0.75, 1.25)  # multiplies the deviation from the brain's mean
  config.augment.brightness_range = (-0.1, 0.1)  # added, in units of the brain's std
  config.augment.bias_field_probability = 0.0  # per sequence
  config.augment.bias_field_strength = 0.3  # field exp(N(0, strength)), smooth over the volume
  config.augment.noise_probability = 0.0  # per sequence
  config.augment.noise_std = (0.0, 0.1)  # uniform draw, in units of the brain's std
  config.augment.blur_probability = 0.0  # per sequence
  config.augment.blur_sigma = (0.5, 1.0)  # voxels
  config.augment.random_crop = False  # train on data.crop_shape windows drawn around the tumour
  #   or the brain (from the whole volume) instead of the window centred on the brain
  config.augment.foreground_share = 0.33  # random_crop: share of windows centred on a tumour voxel

  config.predict = ml_collections.ConfigDict(type_safe=False)  # mc_chunk_size: 'auto' or a number
  config.predict.num_mc_samples = 0  # > 0: MC dropout; writes the per-voxel variance too
  config.predict.mc_chunk_size = 'auto'  # MC samples computed together: 'auto' (the largest
  #   of N, N/2, ..., 1 whose XLA plan fits memory_budget_gib), or a number (0 = all N); memory grows
  #   with it; other chunk sizes give the same samples to float32 round-off only
  config.predict.checkpoint = 'best'  # 'best' | 'latest'
  config.predict.window_shape = ()  # e.g. (96, 96, 96): predict on overlapping windows of this size
  #   blended with Gaussian weights (volumes larger than memory allows); () = the whole volume
  config.predict.window_overlap = 0.5  # fraction of a window shared with each neighbour
  config.predict.tta = 'none'  # test-time augmentation: 'lr' (2 mirrored views) or 'flips' (8),
  #   pooled with any MC samples into the variance, entropy, MI and QU-BraTS maps
  config.predict.resample = 'auto'  # 'auto': cases whose spacing differs from the model's
  #   (WORKDIR/grid.json) by > 5 % are predicted on its grid and resampled back; 'never': as stored

  # Table I's baselines (model.variant 'replica' | 'lsdn' | 'cnn2d', rsnet_jax/baselines/): not
  # the paper's code (it gives none); sizes for a CPU, the original papers' designs.
  config.baseline = ml_collections.ConfigDict()
  config.baseline.replica = ml_collections.ConfigDict()
  config.baseline.replica.patch = 3  # voxels: each input's patch^3 cube
  config.baseline.replica.samples_per_case = 10000  # brain voxels drawn per training case
  config.baseline.replica.trees = 30
  config.baseline.replica.min_samples_leaf = 5
  config.baseline.replica.max_features = 1.0  # share of features per split: 1.0 = bagged trees
  config.baseline.replica.n_jobs = -1  # scikit-learn's processes: -1 = every core
  config.baseline.lsdn = ml_collections.ConfigDict()
  config.baseline.lsdn.patch = 3
  config.baseline.lsdn.hidden = 64  # units per hidden layer
  config.baseline.lsdn.samples_per_case = 10000
  config.baseline.lsdn.steps = 2000
  config.baseline.lsdn.batch_size = 256  # voxels
  config.baseline.lsdn.learning_rate = 1e-3  # Adam, cosine-decayed to 0
  config.baseline.cnn2d = ml_collections.ConfigDict()
  config.baseline.cnn2d.features = 16  # the encoders' first level; x2 per pooling
  config.baseline.cnn2d.latent = 16  # channels of the modality-invariant latent
  config.baseline.cnn2d.embedding_weight = 1.0  # on the latents' spread across inputs
  config.baseline.cnn2d.steps = 1500
  config.baseline.cnn2d.batch_size = 16  # axial slices
  config.baseline.cnn2d.learning_rate = 1e-3

  config.uncertainty = ml_collections.ConfigDict()  # --mode uncertainty (the MC-dropout study)
  config.uncertainty.num_mc_samples = 20  # N, as in the paper
  config.uncertainty.num_bins = 15  # confidence bins of the reliability diagram / ECE
  config.uncertainty.other_models = ()  # workdirs of models for other targets: more Fig. 3 columns
  return config
