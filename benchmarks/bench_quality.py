"""Quality of every generator family on the shared datasets over split seeds, against the targets of issue #11.

    python benchmarks/bench_quality.py [--datasets iot-sentinel ndpi-pcaps requet] [--seeds S ...]
        [--scoring-seeds S ...] [--families bootstrap marginals markov gmm transformer ssm diffusion] [--jobs 2]
        [--device auto]
        [--aug-datasets iot-sentinel] [--aug-families markov transformer ssm diffusion] [--aug-fractions 0.01]
        [--aug-seeds 0 1 2] [--cache /tmp/ntg-bench/quality] [--data-root ../shared/datasets] [--fresh [FAMILY ...]]
        [--max-flows-per-class N] [--epochs N] [--out benchmarks/results/quality]   (last two: smoke tests only)

``--datasets`` takes registry names or paths to your own captures or flow files (whatever ``ntg prepare`` takes),
split by capture where the source names captures. Each (dataset, split seed, family) cell fits
``create_generator(family)`` with its defaults on the prepared training split (``--cache``, outside the repository)
and scores it with :func:`ntg.evaluation.fast.fast_scores` on the **test** split, once per scoring seed (the seed of
the sampled flows and of the Random Forests; the cell keeps the means, and the privacy gate only where it passed for
every seed): TSTR/TRTR (RF macro-F1), fidelity score (lower is better), copy rate beside the natural one, median DCR
beside the hold-out's, the privacy gate, fit seconds, parameters, (neural) epochs. On split seed 0
:func:`ntg.evaluation.augmentation.run_augmentation` gives the low-data augmentation under both protocols (generator
fitted on the full training split; refitted on the fraction alone) beside real-only, SMOTE, the hand-crafted
augmentations and the 100 % ceiling. Cells run longest first in ``--jobs`` spawned one-thread processes, each stored
atomically in ``--cache``/cells and reused by a re-run (``--fresh``: refit every cell, or the named families' cells,
after a change to their code); after a change to the evaluation code (``ntg/evaluation``) or to the scoring seeds a
re-run scores the stored generators again without refitting them. Writes ``--out``.json (records, aggregates,
targets, augmentation, environment, wall time), ``.md`` and ``.png``.

Targets, per dataset, on the means over split seeds: (a) every GenAI family (transformer, ssm, diffusion) has
TSTR/TRTR ≥ markov's and fidelity ≤ markov's; (b) the best GenAI TSTR/TRTR ≥ markov's + 0.05 (N/A where TSTR F1
≤ 1 makes that unreachable: markov + 0.05 above the mean of 1 / TRTR); (c) transformer ≥ 0.95 wherever markov ≥
0.90 (N/A elsewhere); (d) diffusion ≥ markov on iot-sentinel; (e) ``privacy_ok`` (copy rate ≤ natural + margin,
median DCR ≥ 0.5 × the hold-out's) on every split seed of every family. Beside them, each GenAI family against
markov on the same split seeds: the mean per-seed difference with its 95 % t interval (``quality_report.py``,
which also aggregates and renders).

Seeds by default (:func:`default_seeds`): split seeds 0–4 scored with seed 0 on large sets; on sets under 4,096
training flows, where a fit takes seconds and the noise is widest (item 11), split seeds 0–9, each cell scored
with seeds 0, 1 and 2.

Measured 2026-12-03 on the shared 2-core CPU machine, ``--jobs 2 --aug-families markov transformer ssm diffusion``:
iot-sentinel over split seeds 0–4, ndpi-pcaps and requet over split seeds 0–9 × scoring seeds 0–2. Split seeds 5–9
of the two small sets took 13.4 min for their 70 cells, and scoring all 140 small-set cells with three seeds 16 min;
a cold run takes about 135 min (fit and cell times add up to about 265 min over 2 workers). Per fit, on one thread:
transformer 10–16 s on the small sets and 150–240 s on iot-sentinel; SSM 31–53 s and 380–550 s; diffusion 57–75 s
(60 epochs) on the small sets and 990–1,220 s (120 epochs) on iot-sentinel, whose cells also spend about 6 min
sampling and scoring. Each family is also compared with markov on the same split seeds (the mean per-seed difference
with its 95 % t interval), because one split moves a family by up to 0.4 on ndpi-pcaps. Results are in
``results/quality.{json,md,png}``. No GPU was lent.

* iot-sentinel (10,342 training flows, 29 classes), TSTR/TRTR with fidelity in brackets, 5 seeds:
  - transformer 0.904 ± 0.024 (0.083) and SSM 0.895 ± 0.028 (0.087), against markov 0.786 ± 0.021 (0.104);
    paired with markov: +0.117 ± 0.020 and +0.109 ± 0.056, better on both on 5 of 5 seeds;
  - diffusion 0.844 ± 0.017 (0.084), +0.058 ± 0.026, better on both on 5 of 5 seeds;
  - privacy ok on every seed (copy rate 0.21–0.30 against a natural 0.46, median DCR 0.10–0.13 against 0.05).
* ndpi-pcaps (1,047–1,068 flows, 15 classes), 10 split seeds × 3 scoring seeds, with the capture balance of item 12
  and, for the transformer and SSM, the context noise of item 14 (their 20 cells refitted 2026-12-06, 2 processes
  on the 2 cores: fits of 17–20 s and 43–47 s; diffusion's cells of 2026-12-03 took 130–270 s with 3–4 processes
  sharing the cores): **every network is at least level with the chain on both means, further from the training
  flows, and private on every split.** TSTR/TRTR: transformer 0.916 ± 0.075, SSM 0.961 ± 0.120, diffusion 0.904 ±
  0.074, markov 0.899 ± 0.042; paired with markov +0.017 ± 0.065, +0.062 ± 0.099 and +0.005 ± 0.063. Fidelity
  0.201 / 0.205 / 0.197 against 0.210 (paired +0.008 ± 0.015, +0.005 ± 0.013, +0.013 ± 0.015). Median DCR 1.98 /
  1.73 / 1.49 against 1.31 for held-out flows, copy rate 0.037 / 0.038 / 0.049 against a natural 0.018; the chain
  replays near-copies (DCR 0.32) and fails the privacy gate on every seed. Targets (a), (b) and (e) are met for
  the networks; (c) does not apply (the chain 0.899 < 0.90). The per-packet ``marginals`` baseline scores 0.900
  (0.219). On split seeds 10–19, which no default was chosen on (item 14), the chain scores 0.921 and the networks
  0.949 (transformer) and 0.940 (SSM), privacy ok on 10 of 10: the ordering holds, the margins of (b) and (c) do
  not. Why the spread is so wide: TSTR is a macro-F1 over the 15 classes, 7–9 of which have fewer than 10 test
  flows on some splits (IPSec: 1), so one flow can move TSTR/TRTR by up to 0.2, and the sampled flows alone move
  it by 0.05–0.12 on a fixed generator (item 11).
* requet (704–743 flows, 5 classes), 10 × 3 seeds: saturated. TRTR is 0.99–1.00 and every generator scores
  0.99–1.00, so target (b) is out of reach (the bench marks it N/A). The networks' fidelity is the best
  (transformer 0.107, SSM 0.104, diffusion 0.108, markov 0.120; paired +0.014 ± 0.007, +0.016 ± 0.006, +0.012 ±
  0.009), but their TSTR/TRTR is 0.003–0.010 below markov's 1.000: one or two test flows of 212–230, e.g. the
  only 8-packet SSDP flow of seed 0's test split, which the networks' SSDP flows (2–4 packets, as 136 of the 138
  training flows) do not cover. The training flows themselves, replayed (``bootstrap``), score 0.998 ± 0.003: the
  transformer and SSM are level with the real data they learn from, and the chain is the one generator above it,
  by recombining packets into flows the training split barely holds (long SSDP flows) and the test split has.
* Augmentation, iot-sentinel with 1 % of the real training flows, RF macro-F1 (split seed 0):
  - real only 0.230, SMOTE 0.229, hand-crafted 0.231, all real 0.634;
  - generators fitted on the full split: markov 0.377, transformer 0.437, ssm 0.440, diffusion 0.398 (every
    cell recomputed 2026-12-06 with no stored generator to reuse: the SSM's refit reproduced its 0.440, the
    transformer's scored 0.437 against 0.427 for the stored fit of 2026-12-03, diffusion's 0.398 against 0.406;
    iot-sentinel takes no context noise, its flows recur across captures);
  - refitted on the 1 % alone: 0.22–0.24 (transformer 0.236, SSM 0.242, diffusion 0.224, markov 0.232), no real
    gain, for the networks and for the chain. Since 2026-12-06 the refit gets the drawn flows with their captures
    (``ntg.evaluation.augmentation``; before, labels only, so no capture rule applied to it). On split seed 0's
    1 % (about 109 flows) the share of flows recurring in another capture is 0.102 / 0.163 / 0.061 for draws
    0 / 1 / 2: the first two confine every class, the third trains with capture balance and context noise.
    Against the label-only refits: transformer 0.236 / 0.235, SSM 0.242 / 0.240, diffusion 0.224 / 0.222.

* A set no default was tuned on: the CESNET-MINER22 PPI sample in ``../shared/datasets`` (3,999 ISP flows, Miner
  or Other; one flow per row, so the split is by flow), ``--datasets
  ../shared/datasets/cesnet-miner22/CESNET-MINER22-PPI/input/miner22-ppi-sampled.csv --seeds 0 1 2 3
  --aug-datasets`` (2,799 training flows; 3 scoring seeds), measured 2026-12-03 with the same cell procedure:
  TRTR 0.99–0.995, so TSTR/TRTR saturates (markov 0.990, transformer 0.990, SSM 0.989, diffusion 0.964);
  fidelity markov 0.110, transformer 0.098 (better on all 4 splits), SSM 0.108, diffusion 0.132 (worse on all
  4); privacy ok everywhere. Diffusion trails the chain on both figures on this set.

Investigation: why the networks did not generalise across captures (ndpi-pcaps, split seeds 0–2, transformer)

1. It was model selection, not capacity. At batch 256 a thousand flows give 4 optimiser steps per epoch. The
   capture-level validation loss was lowest at epoch 4–9 (7.1 against a training loss of 4.2) and early stopping
   kept those weights, so the model was stopped after about 36 steps. Its flows were blurred: median distance to
   the closest training flow 3.1 against 0.8 for held-out real flows (Markov 0.31); 13 of 1,066 flows had one
   packet although no training flow has fewer than two. TSTR/TRTR 0.64, 0.89, 0.65 on seeds 0–2.
2. The validation loss is no guide on such splits. It bottoms out at epoch 4–5 with dropout 0.2, and at epoch 4
   with batch 32. Its rise comes from the validation captures' sizes and timings that no training capture has,
   while the samples keep improving. Trained for fixed budgets at batch 64 without selection, the model goes from
   blurred to memorised: 12 epochs gave 0.98 with DCR 1.43 (held-out 1.20) and copy rate 0.048 (natural 0.011,
   margin 0.05); 24 epochs gave 0.98 with copy 0.067 (over the margin) and DCR 0.19; 60 epochs gave 1.03 with
   copy 0.085 and DCR 0.07, i.e. copying. Dropout 0.2 with 20 epochs gave 0.92 and DCR 0.55.
3. The vocabulary is not the cause. With 16 size bins and 12 iat bins instead of 48 and 48 (and early
   stopping as before), the mean was 0.72 against 0.73, within the spread. Decoding the bins to the class's
   own sizes and times (``ntg/models/bin_values.py``) instead of uniformly across the bin puts the sampled
   values back on sizes the class sends; alone it moved seed 0 from 0.68 to 0.64, which is within the noise.
4. Hence the data rules in ``ntg/models/data_rules.py``, applied by the loop in ``fit``: below 4,096 training
   flows, batch by size (at least 16 steps per epoch), 12 epochs, last weights kept, validation loss only logged.
   Large sets (iot-sentinel) keep batch 256, 20 epochs and early stopping.
5. The diffusion family was under-trained, not blurred by its decoding. It does not memorise within 60 passes:
   copy rate 0.000 on ndpi-pcaps, and its validation loss was still falling at epoch 60 on iot-sentinel. 60
   epochs raised ndpi-pcaps from 0.61 to 0.83 and iot-sentinel from 0.50 to 0.63, hence its own default
   (``DiffusionGenerator.default_epochs``).
6. Then its guidance was too strong and its space too blurred (fits saved once, sampled with several guidance
   scales; split seed 0 unless said):
   - Guidance 3.0 pushed every class to its modes. On ndpi-pcaps the continuous matrix scored 0.945 at guidance
     1.0, 0.907 at 2.0, 0.84 at 3.0 and 0.79 at 5.0, with fidelity 0.17 → 0.29. iot-sentinel's 29 classes need
     some guidance: 0.65 at 1.0, 0.79 at 1.5 (analog bits). The default is now 1.5.
   - Diffusing the analog bits of the packet tokens (``ntg/models/token_bits.py``: presence, direction,
     Gray-coded size and iat bins) instead of scaled values puts sizes back on the exact values a device sends.
     On iot-sentinel at guidance 1.5, fidelity 0.091 against 0.140 for the matrix, TSTR/TRTR 0.786 against 0.70.
     On ndpi-pcaps the two spaces are level within the seed spread.
7. Not solved:
   - The SSM on ndpi-pcaps has a wide spread between seeds (one at 0.795). It reaches a lower training loss in
     the same budget (1.8 against 2.4), but fewer epochs do not help: 8 epochs gave 0.784, 0.961 and 0.925
     (mean 0.890 against 0.919 at 12), fidelity 0.227 against 0.224. More do not either: 16 epochs gave 0.982,
     0.879 and 1.039 (mean 0.967) but fidelity 0.223 and it starts to copy: copy rate 0.056–0.070 against a
     margin of 0.061, median DCR 0.37–0.55 against hold-out 0.82–1.63 (privacy fails on 2 of 3 seeds). Between
     12 and 16 passes the SSM goes from realistic to memorised on a thousand flows.
     Regularised longer training (2026-12-03, seeds 0 / 1 / 2): dropout 0.2 with 16 epochs gives 1.138 / 0.989 /
     1.012 with fidelity 0.218 / 0.215 / 0.218 (mean 0.217, level with Markov) but copy rate 0.064 / 0.064 / 0.048
     and median DCR 0.58 / 0.61 / 0.57 against hold-out 0.82 / 1.15 / 1.63: the DCR gate fails on seed 2 and the copy
     rate is at the margin on seeds 0 and 1; dropout 0.1 with 16 epochs gives fidelity 0.231, dropout 0.2 with 24
     epochs DCR 0.19–0.23 (copying). Sharper sampling on the default fit (temperature 0.9, or top-p 0.95) cuts the
     DCR to 0.30–0.57 (from 1.18–1.21) without a consistent gain. Not adopted.
   - (Solved in item 8.) Diffusion on iot-sentinel with 60 epochs was level with the Markov chain on split seed 0 but
     not on the mean, at about 11 min per CPU fit. On seed 0, one saved fit sampled at guidance 1.5 / 2.0 / 2.5
     scored 0.786 / 0.793 / 0.785 with fidelity 0.091 / 0.108 / 0.126, and DDIM noise eta=1 0.772 (0.144): stronger
     guidance trades fidelity for little TSTR. Self-conditioning (``self_condition=True``, guidance 1.5, seeds 0–2)
     lifts iot-sentinel to 0.781 / 0.780 / 0.789 (mean 0.783, fidelity 0.106; Markov 0.785, 0.108) but drops
     ndpi-pcaps to 0.851 / 0.958 / 0.828 (0.879 against 0.918) and requet to 0.983 (0.992): not adopted; at guidance
     2.0 iot-sentinel gives 0.810 / 0.772 / 0.805 (0.796) with fidelity 0.131, worse than Markov.
   - A refit on 1 % of iot-sentinel (about 4 flows per class, 8 steps per epoch) learns too little to help.
   - Class-level failures were not broken down; per-class F1 is in ``ntg evaluate``'s report.
8. Diffusion on large sets was stopped too early, not short of capacity. With 60 epochs the best validation
   epoch was 60, 60 and 58 on iot-sentinel's three seeds: the loss was still falling. Measured on iot-sentinel:
   - 120 epochs with early stopping (patience 5): seed 0 trained on and scored 0.849 (fidelity 0.092), but seed 1
     stopped at epoch 62 with the learning rate still at half its peak and scored 0.758 (fidelity 0.119, against
     0.733 and 0.089 after 60 epochs). The loss is a mean over noise levels; it flattens while samples improve.
   - An EMA of the weights (``ema_decay=0.999``, 60 epochs, seed 0) scored 0.740 (0.089): no help.
   - 120 epochs keeping the last weights (now the family's default on sets of 4,096 flows or more):
     0.839 / 0.822 / 0.873, mean 0.845 (fidelity 0.085), privacy ok 3/3; 17 min per CPU fit.
     Small sets keep 60 epochs, where the family is already level (ndpi-pcaps) or saturated (requet).
9. Which classes lose, and why the networks stay private where the Markov chain does not (2026-12-03, per-class
   fidelity parts of the default fits; requet split seed 1 unless said). On requet the networks lose on DNS
   (class score 0.16 transformer, 0.22 SSM, against markov 0.12), through ``w1_payload`` (0.45 / 0.61 against
   0.10): 1 % of their DNS responses are over 1,000 bytes, a size no training DNS flow has (99th percentile 324
   bytes). Softmax heads trained 12 passes over 700 flows leave some mass on every token, and a token the class
   never sent decodes to another class's sizes. ``class_support=True`` (transformer, SSM) masks, per class, the
   packet tokens and iat bins the class never used in training (from the tokenizer's class tables, so stored
   generators take it too). Seeds 0 / 1 / 2, without → with the mask (``/tmp`` harness: the same fit scored both
   ways with :func:`~ntg.evaluation.fast.fast_scores` on the test split):
   - requet: transformer fidelity 0.134 / 0.142 / 0.169 → 0.104 / 0.139 / 0.118 (markov 0.132 ± 0.007), SSM
     0.148 / 0.175 / 0.152 → 0.125 / 0.140 / 0.126; TSTR/TRTR unchanged within 0.006; privacy ok on every seed.
   - iot-sentinel (stored bench fits, seeds 0 / 1): SSM 0.849 / 0.828 → 0.931 / 0.927, fidelity 0.093 / 0.113 →
     0.081 / 0.097, DCR 0.10 against hold-out 0.05 either way; transformer 0.902 / 0.895 → 0.887 / 0.889,
     fidelity 0.087 / 0.092 → 0.082 / 0.090.
   - ndpi-pcaps: the SSM's fidelity 0.200 / 0.233 → 0.168 / 0.195 and TSTR/TRTR 0.795 / 0.867 → 0.966 / 1.111,
     but median DCR 1.21 → 0.27 / 0.35 against hold-out 0.82 / 1.15 and copy rate up to 0.080: privacy fails, as
     the Markov chain's does (DCR 0.32). The transformer's DCR falls from 1.34–1.56 to 0.55–0.61 (fails on 2 of
     3 seeds). On this set the networks' draws outside the class's own tokens are what keeps them apart from
     the training flows: restricted to those tokens they trade privacy for fidelity like the chain.
   So the mask helps where real flows repeat (hold-out DCR 0.05) and breaks the privacy gate where every capture
   is different (hold-out DCR 0.8–1.6). What tells the two apart before any sampling is how often a training
   flow's class and tokens recur in *another* capture: 0.46–0.47 on iot-sentinel, 0.43 on requet, 0.015–0.028 on
   ndpi-pcaps (whose flows do repeat within their own capture: 0.34–0.37 counted within the whole table, which
   would not separate the sets). Hence the data rule (``ntg/models/data_rules.py``, ``RECURRENT_SHARE`` 0.1):
   ``class_support`` left unset is decided in ``prepare`` from that share, saved with the generator and written
   into the fit notes.
10. Rare classes break the networks on ndpi-pcaps (2026-12-03, split seed 3, the stored bench fits). That split
    puts 6 LLMNR flows in training and 41 in the test split (LLMNR is then a quarter of the per-class fidelity
    score, whose classes need enough test flows). The training flows are pairs of 26- or 28-byte queries; the
    chain replays them and the RF trained on its flows finds LLMNR with F1 0.88 (0.94 trained on real flows). The
    transformer and SSM score F1 0.00 there and LLMNR fidelity 0.48 / 0.51 against the chain's 0.31: a class
    embedding trained on 6 flows × 12 passes leaves the heads near the other classes' distribution, and a third to half
    of their LLMNR flows carry another class's sizes (96 / 577 / 47 bytes, 58 / 824). Hence TSTR/TRTR 0.600 and
    0.651 on that seed, against 0.860 for the chain, and the 5-seed means below the chain's.
    Measured on the stored fits of seeds 0–4 (``/tmp`` harness, the same fits sampled with the class support
    mask on only for classes with fewer than k training flows; mean TSTR/TRTR, fidelity, privacy-ok seeds):
    - transformer: k = 0 (today) 0.897, 0.225, 5/5; k = 16: 0.907, 0.219, 5/5; k = 32: 0.911, 0.229, 5/5;
      k = 64: 0.847, 0.222, 5/5;
    - SSM: k = 0 0.862, 0.233, 5/5; k = 16: 0.912, 0.222, 5/5; k = 32: 0.933, 0.223, 3/5; k = 64: 0.903, 0.230, 3/5;
    - markov: 0.898, 0.216, 0/5.
    k = 16 changes only seed 3 (no class below 16 flows on the other seeds), lifts it on both figures for both
    networks and keeps privacy, so it is now the rule (``RARE_CLASS_FLOWS`` in ``ntg/models/data_rules.py``; the
    bench refitted ndpi-pcaps' transformer and SSM cells with it, ``--datasets ndpi-pcaps --fresh transformer
    ssm``, 3 min; iot-sentinel and requet confine every class already). It still leaves the networks' fidelity
    behind the chain's (0.219 / 0.222 against 0.216). The mask on every class, or on its per-direction size range,
    costs privacy here (item 9; the range fails the gate on seeds 1 and 2: copy rate 0.070, DCR 0.68 against
    1.63). The training side, refitted on seeds 0–4 with every class below m flows repeated up to m flows:
    - transformer: m = 32 0.905, 0.223, privacy 4/5 (seed 3: 0.723); m = 64 0.900, 0.230, 4/5;
    - SSM: m = 32 0.868, 0.227, 4/5; m = 64 0.931, 0.216, 2/5 (median DCR 0.42–0.58 against hold-out 0.82–1.63;
      copy rate 0.074 on seed 1).
    Repeating a handful of flows lifts the rare class a little, and the samples move towards the training flows.
11. The evaluation's own noise (2026-12-03). One stored generator scored with ``fast_scores`` seeds 0–4 (the seed
    draws the synthetic flows and seeds the Random Forests) gives, on ndpi-pcaps split seed 0: markov TSTR/TRTR
    0.806–0.924 (std 0.045), transformer 0.831–1.003 (0.082), SSM 0.795–1.021 (0.089), fidelity std 0.02; on
    split seed 3: markov 0.827–1.067 (0.116), transformer 0.652–0.963 (0.114), diffusion 0.786–0.948 (0.069).
    The seed-3 cell that started item 10 (transformer 0.652 against the chain's 0.860) was partly the draw: over
    the five draws 0.813 against 0.941. With one draw per cell and 5 splits, a 95 % interval of a paired
    difference on this set was ±0.10–0.16 wide. Hence the defaults of :func:`default_seeds` for sets under 4,096
    training flows: 10 split seeds, each cell scored with 3 seeds (intervals ±0.06–0.07); iot-sentinel keeps
    5 × 1, where the spread between splits is 0.02. The means moved with it: over seeds 0–9 with one draw the
    transformer had 0.924 against the chain's 0.910, with three draws 0.898 against 0.899.
    Measured on the new yardstick and not adopted: confining every class while decoding payload sizes uniformly
    inside their bins (so that new flows differ from the training flows by in-bin sizes rather than by
    off-class tokens) failed the privacy gate on 3 of the first 4 seeds for the transformer (median DCR
    0.46–0.55 against hold-out 0.82–1.63) and 3 of 3 for the SSM (0.29–0.32), with no fidelity gain.
    Refits on ndpi-pcaps' 10 splits × 3 draws (``/tmp`` harness; mean TSTR/TRTR, fidelity, privacy-ok splits;
    defaults: transformer 0.898, 0.215, 10/10; SSM 0.924, 0.219, 10/10; markov 0.899, 0.210, 0/10):
    - transformer, 16 epochs: 0.886, 0.211, 3/10 (median DCR 0.71–0.81: it starts to copy); dropout 0.1:
      0.890, 0.217, 10/10;
    - SSM, dropout 0.1: 0.913, 0.216, 10/10; dropout 0.2: 0.911, 0.216, 10/10 (fidelity up by 0.003, TSTR/TRTR
      down by 0.012, both well inside the intervals: not adopted);
    - diffusion sampled with guidance 2.0 instead of 1.5 (split seed 0): 0.801 against 0.903, privacy fails.
    - diffusion with 120 epochs instead of the small-set 60 (splits 0, 1, 5, 6, stopped there): 0.900, 0.893,
      0.912, 0.884 against 0.903, 0.804, 0.862, 0.957, privacy failed on all four (median DCR 0.50–0.59 against
      hold-out 0.82–1.64): on a thousand flows the family starts to copy between 60 and 120 passes.
    The fidelity the networks reach is that of the real training flows themselves: the ``bootstrap`` baseline,
    which replays them, scores 0.215 ± 0.032 on the same splits. The chain's recombined flows score 0.210 but
    sit at a quarter of the held-out flows' distance from the training flows. Every network variant measured
    so far that closes that gap (longer training, the class support mask, sharper sampling) does it by
    moving towards the training flows and fails the privacy gate.
12. The training split's largest captures, not the network, held the networks back on ndpi-pcaps (2026-12-03). Per
    class the split is dominated by one or two captures (split seed 0: 66 of 229 DNS flows from one of 15
    captures, 86 of 88 WhatsApp flows from one of 3), and the flows it is judged on come from captures it never saw.
    A network fitted to the flows as they come learns the class as its largest capture sends it; the chain's
    back-off mixes the captures' packets. Weighting each training flow by ``n ** -a`` for ``n`` flows of its class in
    its capture (each class keeping its draws) makes the network learn the class across its captures. Transformer,
    10 split seeds × 3 draws, the split resampled once by these weights before training (``/tmp`` harness): a = 1
    (every capture equal) 0.934, fidelity 0.206, but privacy 2/10 (copy rate 0.061–0.077: the flows of one-flow
    captures are repeated until they are learnt); a = 0.5: 0.910, 0.209, privacy 9/10. Drawn afresh each epoch with
    a = 0.5 (``capture_balance``, decided in ``fit`` from the share of flows recurring across captures,
    ``ntg/models/data_rules.py``; only ndpi-pcaps among the shared sets falls under it), the bench's refits give
    (10 × 3, paired by split with the same code before the rule, refitted the same day): transformer 0.876 →
    0.902 (+0.026 ± 0.055), fidelity 0.214 → 0.209 (+0.005 ± 0.007); SSM 0.925 → 0.940 (+0.015 ± 0.042), 0.219 →
    0.206 (+0.013 ± 0.009, better on 8 of 10 splits); diffusion (against the stored cells) 0.869 → 0.904 (+0.035 ±
    0.063), 0.216 → 0.197 (+0.019 ± 0.010, better on 10 of 10). Unlike every variant of items 9–11, the fidelity
    gain comes with the flows moving *away* from the training flows (median DCR 1.54 → 1.90, 1.21 → 1.55, 1.16 →
    1.49): the networks generalise to the unseen captures instead of copying the seen ones. Privacy stays ok on
    every split but one (transformer, split seed 1, item above). The TSTR/TRTR gains are inside the split noise.
13. What is left, measured and not solved (2026-12-03; ``/tmp`` harness, 3 draws per cell):
    - requet, diffusion 0.010 ± 0.003 below the chain on TSTR/TRTR (level on 0 of 10 splits). On split seed 1 the RF
      trained on its flows misses 4–6 of the 222 test flows where the chain's misses 0–1: DNS flows that open with
      two queries before the answer (``++-``: 1 % of the training DNS flows, 3 % of the test ones) are taken for
      SSDP, whose flows all run client to server. The fit drops each class's rare direction patterns: none of its
      DNS flows opens ``++-`` (chain 0.3 %; the transformer's 3.8 % ``++`` end early but still teach the RF),
      3 % of its SSDP flows have two packets against 11 % in training, and 89 % of its TLS flows open ``+-++``
      against 79 %. The fit, not the sampler: the same fits sampled at guidance 1.5 / 1.0 × DDIM noise eta 0 / 1
      score 0.990 / 0.990 / 0.987 / 0.990 (split seed 0) and 0.983 / 0.983 / 0.985 / 0.983 (seed 1); 120 epochs
      instead of 60 give 0.978 on seed 1 (fidelity 0.115 against 0.127).
    - ndpi-pcaps, sharper sampling of the capture-balanced SSM (the bench's stored fits): temperature 0.9 scores
      0.949 / 0.928 / 1.012 on split seeds 0 / 1 / 2 against 0.959 / 0.934 / 0.969, top-p 0.95 0.906 / 0.839; the
      median DCR falls from 1.2–1.8 to 0.5–0.7 and privacy fails on every split tried. As in item 9, the tail of
      the heads' distribution is what keeps the flows away from the training flows.
    - ndpi-pcaps, the transformer with capture-balance exponent 0.4 instead of 0.5 (to bring its copy rate on split
      seed 1 inside the margin), 10 splits × 3 draws: privacy ok on 10 of 10 (copy rate 0.036–0.053) and fidelity
      0.204 against 0.209, but TSTR/TRTR 0.868 against 0.902 (lower on 7 of 10 splits), below the chain's 0.899.
    - ndpi-pcaps, the SSM with exponent 0.75 (towards target (b), +0.05 over the chain): 0.944 against 0.940,
      fidelity 0.207 against 0.206, privacy ok on 10 of 10; a difference far inside the split noise (± 0.06).
    - requet, the transformer and SSM trained 24 epochs instead of 12 (flows recur there, so the privacy margin
      is wide: natural copy rate 0.34), 3 draws per cell: transformer 0.998 against 0.997 over 10 splits, fidelity
      0.105 against 0.107, privacy ok on 10 of 10; SSM 0.994 / 0.996 / 1.000 / 0.988 on splits 0–3 against
      0.994 / 0.997 / 1.000 / 0.989 (stopped there). The chain's 1.000 is not a matter of training length.
    - ndpi-pcaps, the capture-balanced SSM trained 16 epochs instead of 12 (towards target (b)), splits 0–5 × 3
      draws: 0.954 against 0.907 for the default on the same splits (the chain 0.894), fidelity 0.201 against
      0.204, but privacy fails on 4 of 6 splits (median DCR 0.48–0.74 against hold-out 0.82–1.64, copy rate up to
      0.061); stopped there. As before capture balance (item 7), the passes that lift TSTR/TRTR are the ones that
      bring the flows onto the training flows.
    - requet, diffusion with the analog bits scaled by b before noising (Chen 2023, on noise scheduling; now the
      setting ``data_scale``), split seeds 0 / 1 against the default's 0.992 / 0.983 (fidelity 0.112 / 0.126):
      b = 0.5 0.988 / 0.983 (0.114 / 0.139); b = 2 0.989 / 0.986 (0.102 / 0.122). Over more splits (2026-12-06, the
      bench's cells with the default changed, paired with the committed cells) b = 2 gives nothing: ndpi-pcaps,
      10 splits × 3 draws, TSTR/TRTR 0.909 against 0.904 (paired +0.006 ± 0.047), fidelity 0.200 against 0.197
      (−0.004 ± 0.007), privacy ok 10 of 10; requet, splits 0, 4, 5, 6, 8, 9, 0.991 against 0.991 (+0.000 ±
      0.003), fidelity 0.104 against 0.106 (+0.002 ± 0.009). The default stays 1.
    - requet, diffusion with the presence and direction bits weighted 4 × in the loss (the channels that carry the
      direction patterns the fit drops; patched in the harness), splits 0, 4, 5, 6, 8, 9 × 3 draws: TSTR/TRTR
      0.990 against 0.991 (paired −0.001 ± 0.004), fidelity 0.109 against 0.106 (worse by 0.003 ± 0.003). Not
      adopted: the rare direction patterns are not a matter of the loss's weight on them.
    - ndpi-pcaps, the capture-balanced SSM trained 14 epochs (between the default 12 and the 16 above), 10 splits ×
      3 draws (2026-12-06): 0.964 against 0.940 for the default (paired +0.024 ± 0.033; the chain 0.899, so +0.065),
      fidelity 0.206 against 0.206, but privacy fails on 3 of 10 splits: copy rate 0.047–0.057 against a natural
      0.011 on splits 0–2; median DCR 0.93–1.20 against hold-out 0.82–1.74, below the hold-out's level on 7 of 10.
      Target (b) is reached only by the passes that start copying.
    - ndpi-pcaps, that SSM with 16 epochs and label smoothing 0.1 (to keep the heads' tail while training longer;
      patched in the harness), splits 0, 2, 4, 6, 8, 9 × 3 draws: 0.928 against 0.959 for the default on those
      splits (paired −0.031 ± 0.062), fidelity 0.218 against 0.206, median DCR 2.9–3.1: the smoothed heads put mass on
      every token and the flows blur (privacy ok on every split). Stopped there.
    - Where the copies of that 14-epoch SSM come from (its stored fits re-scored, splits 0–2): not its decoded
      times. Sampled at temperature 1.1 its median DCR doubles (to 1.8–2.2) but the copy rate stays (0.043–0.047;
      TSTR/TRTR 0.926 and fidelity 0.214 over the 10 splits, privacy ok on 10 of 10); drawing the times inside a
      bin with a ±4.7 % jitter instead of the class's recorded value moves it only from 0.053 / 0.057 / 0.047 to
      0.040 / 0.048 / 0.035. The copies are short flows whose discrete shape (directions, exact sizes,
      sub-millisecond gaps) the network has learnt from one training flow.
    - Hence deduplication, the remedy for memorisation in language models (Lee et al. 2022, Kandpal et al. 2022):
      on top of the capture balance each flow's weight divided by the number of identical flows (class and tokens)
      in its capture (776 distinct of 1,066 on split seed 0; patched in the harness), SSM, 10 splits × 3 draws:
      12 epochs 0.920 against 0.940 (paired −0.020 ± 0.032), fidelity 0.201 against 0.206 (+0.005 ± 0.006), copy
      rate 0.025–0.035, privacy ok on 10 of 10; 14 epochs 0.896 (−0.044 ± 0.054), fidelity 0.205, copy rate
      0.023–0.035, privacy ok on 10 of 10. The transformer (12 epochs): 0.883 against 0.902 (−0.019 ± 0.043, below
      the chain's 0.899), fidelity 0.197 against 0.209 (+0.012 ± 0.006, better on 9 of 10), copy rate 0.017–0.029,
      privacy ok on 10 of 10 (split seed 1 included). It stops the copying, improves fidelity and takes some
      TSTR/TRTR with it: the repeated shapes are part of what the classifier learns each class by.
      Halfway (the weight divided by the square root of that number), 12 epochs: transformer 0.859 (−0.042 ±
      0.045), fidelity 0.204, copy rate 0.028–0.036; SSM 0.934 (−0.006 ± 0.040), fidelity 0.211 (−0.005 ± 0.007),
      copy rate 0.031–0.039; privacy ok on 10 of 10 for both. None of these reaches target (b) with privacy
      intact, and the transformer's spread between variants (0.86–0.90) is that of the split noise.
    - Scoring a diffusion cell takes 345 s on ndpi-pcaps (the transformer's 10 s) because sampling is the network
      run 50 DDIM steps × 2 passes (guidance): 126 s per 1,000 flows on one core with the other busy, about
      2 TFLOP (cProfile: linear layers 53 %, GELU 23 %, attention 12 %); this CPU has no native bf16.
14. Context noise: what a back-off chain does that the networks did not (2026-12-06). Items 7, 12 and 13 show the
    networks on ndpi-pcaps going from blurred to replaying training flows, with TSTR/TRTR rising only as they start
    to replay. A Markov chain with back-off never sees a whole flow: it predicts from a short context and falls back
    to shorter ones. Its neural counterpart is data noising as smoothing (Xie et al., ICLR 2017): each input packet
    (size/direction token and its gap) of a training flow replaced, with probability γ, by the pair another flow of
    the batch has at the same position; targets untouched, ended flows left ended
    (:func:`ntg.models.autoregressive.noise_context`). Measured first through a harness patch, the bench's cells
    with the default changed, 10 split seeds × 3 draws each, paired by split with the committed cells (defaults:
    transformer 0.902, fidelity 0.209, privacy ok 9 of 10; SSM 0.940, 0.206, 10 of 10; the chain 0.899, 0.210):
    - transformer, γ 0.2: 0.916 (+0.014 ± 0.047), fidelity 0.201 (+0.008 ± 0.008), copy rate 0.031–0.044, privacy
      ok 10 of 10 (split seed 1 included); γ 0.3: 0.892, 0.200, 10 of 10; γ 0.3 with 14 epochs: 0.888, 0.200;
    - SSM, γ 0.2: 0.945, 0.203, 10 of 10; γ 0.3: 0.961 (+0.021 ± 0.050), 0.205, 10 of 10; with 14 epochs instead of
      12 (which alone copies on 3 of 10 splits, item 13): γ 0.2 0.975, 0.202, privacy 9 of 10 (split seed 1: copy
      rate 0.054); γ 0.3 0.964, 0.198, 10 of 10. The noise moves the point where more passes start to copy;
    - requet, where flows recur across captures: transformer γ 0.2 0.996 against 0.997, fidelity level (−0.001 ±
      0.003); SSM γ 0.3 −0.001 ± 0.001, fidelity 0.002 ± 0.003 worse: nothing to smooth where the training captures
      already hold what new captures send.
    Hence the data rule ``context_noise`` (``ntg/models/data_rules.py``): where flows do not recur across captures
    (the capture-balance condition) the transformer trains with γ 0.2 and the SSM, which fits its training flows
    faster, with 0.3; elsewhere with none. Because the rates were picked on split seeds 0–9, they were checked on ten
    splits not used for any choice (split seeds 10–19, 3 draws each, the same code with and without the noise):
    - the chain 0.921 ± 0.043, fidelity 0.241, privacy 0 of 10 (the targets' (c), transformer ≥ 0.95, applies
      there);
    - transformer 0.897 → 0.949 (+0.052 ± 0.057), fidelity 0.228 → 0.222 (+0.006 ± 0.008), privacy 9 → 10 of 10
      (split seed 13: copy rate 0.051 → 0.034);
    - SSM 0.930 → 0.940 (+0.010 ± 0.077), fidelity 0.232 → 0.233 (−0.001 ± 0.012), privacy 9 → 10 of 10;
    - diffusion (no context noise; its committed code, measured 2026-12-06 in 50 min on one core, fits of 83–109 s):
      0.887 ± 0.052, paired with the chain −0.034 ± 0.040 (below it on 6 of 10 splits), fidelity 0.225 (+0.015 ±
      0.010 better than the chain's), privacy ok 10 of 10.
    Over the 20 splits: transformer 0.900 → 0.933, SSM 0.935 → 0.950, diffusion 0.896, the chain 0.910; every
    network split passes the privacy gate with the noise (37 of 40 without). The utility gains are inside the split
    noise; the privacy gain and the direction of the utility change hold on both halves. Diffusion, level with the
    chain on split seeds 0–9 (+0.005), is below it on seeds 10–19 on TSTR/TRTR while better on fidelity on both.
    Still open on requet, where the rule does not apply: the networks' 0.997 against the chain's 1.000. Sampling
    the stored transformer fits at temperature 1.2 (to reach the rare long SSDP flows) gives 0.998 with fidelity
    0.122 against 0.107, 10 splits × 3 draws: the tempered draws cost more fidelity than the one test flow gains.
15. Which requet test flows the networks miss (2026-12-06; the transformer fits of item 14's baseline, the chain
    and ``bootstrap`` fitted afresh; the RF trained on each one's flows, 3 draws, test flows it gets wrong; split
    seeds 0, 1, 3, 4, ``/tmp`` harness). Flow-draws missed: transformer 3 / 5 / 9 / 3, the replayed training flows
    3 / 5 / 5 / 1, the chain 0 / 2 / 2 / 0.
    - On every one of these splits the test split holds an SSDP flow that sends its four NOTIFY packets (265, 274,
      329 and 339 bytes) twice, 8 packets in all. The RF trained on the transformer's flows takes it for TLS (once
      QUIC) in 3 of 3 draws on every split, as it does in 1–3 of 3 trained on the training flows themselves: 136 of
      138 training SSDP flows stop after one round. Its twin is in training: two captures of the same
      experiment (``baseline_May03_exp_303.pcap`` and ``exp_317``) hold one such flow each among 12 SSDP flows,
      and every split puts one capture in training and the other in test, so the training split has the shape
      once. The chain misses it in none: its order-2 context (329, 339) does not know how many packets the flow
      has sent, so some of its SSDP flows go round again.
    - A DNS flow with three queries before its answer (split seeds 1 and 3) is missed by all three in 2–3 of 3 draws.
    - On split seed 3, four 2-packet SSDP flows of 175 bytes are taken for DNS once each (transformer only).
    So the chain's lead on requet is one flow shape that the training captures barely hold and the chain's short
    memory produces by accident; a network that learns when a class's flows end reproduces the training captures'
    rate of it, as the replayed flows do.
16. The transformer on ndpi-pcaps, towards target (c) over all 20 splits (2026-12-06; the chain's 0.910 over split
    seeds 0–19 brings (c) into play, and the transformer has 0.933 there). Its bench cells refitted with one change
    each, split seeds 0–9 × 3 draws, paired with the committed cells (``/tmp`` harness):
    - an exponential moving average of the weights (``ema_decay`` 0.98, the average kept): 0.862, paired −0.054 ±
      0.037, fidelity level (+0.001 ± 0.003), privacy ok 10 of 10: the average leans on the earlier, blurrier
      weights;
    - 14 epochs instead of 12 with its context noise 0.2: 0.913, paired −0.003 ± 0.043, fidelity level (−0.001 ±
      0.007), privacy ok 10 of 10: with the noise, two more passes neither copy nor help.
    Not adopted.
17. Five variants towards the chain, none adopted (2026-12-06, ``/tmp`` harness, 3 draws per cell):
    - Diffusion, splicing (a back-off chain's recombination done to the training flows): each batch, half the
      flows replaced by their own packets up to a position where a flow of the same class in the batch sends the
      same packet (direction and size bin), then that flow's packets. About a fifth of the rows change, half of
      those into flows no training flow is. ndpi-pcaps split seeds 0, 2, 4 and 9, paired with the committed cells:
      TSTR/TRTR 0.890 against 0.955 (−0.065 ± 0.070, lower on 4 of 4), fidelity level (0.195 against 0.196), copy
      rate 0.047–0.053 against a natural 0.011–0.034 (privacy ok, near the margin); stopped there. The denoiser
      learns the spliced flows as more flows to reproduce, not as a back-off.
    - Diffusion, context noise as item 14 gives the autoregressive families: in each training batch 20 % of the
      packets of the noisy input replaced by another flow's packet at that position, noised to the same level, and
      left out of the loss, so that each packet is denoised from partly wrong neighbours. ndpi-pcaps split seeds 0,
      2, 4, 6, 8, 9: 0.902 against 0.940 (−0.038 ± 0.046, lower on 4 of 6), fidelity level (0.189 against 0.191),
      copy rate 0.040–0.050, privacy ok on 6 of 6; stopped there.
    - Diffusion, class support at decoding, as the autoregressive families sample (item 9): each sampled packet
      token and iat bin of a confined class (every class on requet, by the ``class_support`` rule) moved to the
      token the class used in training whose bits agree best with the sampled channels. requet split seeds 0–3,
      the same fit scored both ways: TSTR/TRTR identical on every split (0.992, 0.983, 0.995, 0.982), fidelity
      0.113 against 0.113 (0.111 → 0.105 on split seed 0, level on the others), privacy ok either way. Diffusion's
      requet flows already keep to their class's tokens; what it misses is item 13's rare direction patterns.
    - Transformer and SSM, context noise drawn from a flow of the same class (a class-conditioned back-off)
      instead of any flow of the batch, at the same rates, ndpi-pcaps split seeds 0–9, paired with the committed
      cells: transformer 0.880 against 0.916 (−0.036 ± 0.037, lower on 8 of 10), fidelity 0.206 against 0.201;
      SSM 0.928 against 0.961 (−0.033 ± 0.044, lower on 7 of 10), fidelity 0.203 against 0.205; privacy ok on
      10 of 10 for both. The noise helps as noise from other classes (one reading, not measured further: the
      network then predicts the next packet from its class more than from the packets before).
    - Transformer and SSM, classifier-free guidance (the class dropped from 10 % of the training flows, the
      logits of each step taken as ``u + w (c − u)`` from the conditional and unconditional passes), ndpi-pcaps
      split seeds 0–9, each fit scored at w = 1, 1.5 and 2: fitted with the label dropout, the networks score lower
      at w = 1 (transformer 0.896 against the committed 0.916, −0.020 ± 0.021; SSM 0.923 against 0.961, −0.038 ±
      0.043), and guidance does not win it back (against w = 1 on the same fits: transformer −0.008 ± 0.036 at 1.5
      and −0.045 ± 0.045 at 2; SSM +0.013 ± 0.042 and −0.011 ± 0.057), while fidelity worsens with w (transformer
      0.200 / 0.207 / 0.212). Privacy ok on every split at every w.
18. The fit's own seed (2026-12-06). Every cell fits its generator with seed 0, and a refit of the same code
    reproduces its cell exactly (diffusion, ndpi-pcaps split seed 4: 0.866, fidelity 0.167), so a paired difference
    between variants carries the spread between fits as well as the change. Refitted with generator seed 1 (the
    bench's data and scoring otherwise; ``/tmp`` harness), ndpi-pcaps:
    - transformer, split seeds 0–9: 0.889 against the committed 0.916 (paired −0.027 ± 0.039; per split −0.098 to
      +0.062, standard deviation 0.055), fidelity 0.198 against 0.201, privacy ok on 10 of 10. With seed 1 the
      transformer is below the chain's 0.899 there: its +0.017 over the chain on the bench is inside the spread of
      its own fits.
    - SSM, split seeds 0–9: 0.973 against the committed 0.961 (paired +0.012 ± 0.067; per split −0.108 to +0.215,
      standard deviation 0.093), fidelity 0.202 against 0.205, privacy ok on 10 of 10: +0.074 over the chain, so
      target (b) holds with this seed too.
    - diffusion, split seeds 0 / 2 / 4 / 9: 0.877 / 1.022 / 0.845 / 1.009 against 0.980 / 0.974 / 0.866 / 0.999
      (−0.017 on the mean; standard deviation 0.064), fidelity 0.197 against 0.196, and the privacy gate fails on
      split seed 0 (copy rate 0.053 against a natural 0.011 in one of three draws).
    So the variants of item 17 that scored 0.02–0.04 below the committed cells are within what another
    seed of the same code gives; splicing and the diffusion context noise (−0.065 and −0.060 on those four splits)
    are below it by about one and a half of its standard errors. A comparison that must separate differences of
    0.03 on this set needs several fit seeds per split, which the bench does not run (it would double a cold run).
19. Which classes the networks lose, and two remedies that do not help (2026-12-07; ndpi-pcaps split seeds 0–9 ×
    scoring draws 0–2, ``/tmp`` harness; the transformer and SSM refitted with seed 0, which reproduces the
    committed cells on 14 of 20 splits and is within 0.021 on the others):
    - Per-class F1 of the Random Forest on the test split, mean over the 30 split-draws (test flows per split in
      brackets), for the real training flows / replayed (``bootstrap``) / the chain / transformer / SSM:
      LLMNR (8) 0.985 / 0.979 / 0.971 / 0.843 / 0.848; MDNS (5.5) 0.135 / 0.080 / 0.048 / 0.006 / 0.023; WhatsApp (6)
      0.208 / 0.071 / 0.096 / 0.008 / 0.025; DNS (100) 0.928 / 0.925 / 0.921 / 0.888 / 0.891; HTTP (26) 0.340 / 0.313
      / 0.242 / 0.204 / 0.214; against WhatsAppCall (11) 0.361 / 0.336 / 0.306 / 0.440 / 0.530, DNScrypt (7) 0.398 /
      0.390 / 0.374 / 0.502 / 0.455, QUIC (13) 0.119 / 0.131 / 0.159 / 0.188 / 0.279 and IPSec (one test flow per
      split) 0.113 / 0.252 / 0.080 / 0.242 / 0.258. Over the classes with at least 5 test flows the transformer is
      level with the chain (TSTR/TRTR of the macro means 0.901 against 0.906) and the SSM above it (0.943); over
      those with at least 10, 0.935 / 0.992 against 0.929: the transformer's lead on the bench comes from the
      small classes, the SSM's holds on the large ones.
    - LLMNR, lost by both networks on 9 of 10 splits (0.44–1.0 against the chain's 0.88–1.0): its flows are one
      query sent twice (two outgoing packets of 22–33 bytes, about 10 ms apart), and in the draws where they are
      lost the Random Forest gives them to DNS. The networks' DNS flows hold 1.5–2 times as many unanswered
      queries (at most 3 outgoing packets, the first under 60 bytes) as the training flows: 0.18–0.20 of their
      DNS flows against 0.10–0.12 (the chain 0.11–0.13; with the capture balance's weights the training share
      is 0.05–0.07), on split seeds 0, 3 and 5. The context noise of item 14 is the likely source: the
      transformer fitted without it on split seed 0 has 0.11–0.13 (three draws; one fit), without capture
      balance 0.17–0.19.
    - WhatsApp is a capture shift: 86 of the 88 training flows of split seed 0 come from one capture that holds
      one direction only, while the test captures' WhatsApp flows are two-way TCP (empty ACKs both ways); no
      generator learns a shape that the training split barely holds.
    - A mixture of fits: each flow drawn from one of the transformer's fits with generator seeds 0, 1 and 2 (the
      rows dealt out at random): 0.875 against 0.915 for seed 0 alone (paired −0.040 ± 0.051, lower on 7 of 10)
      and 0.907 for the mean of the three members; two members (seeds 0 and 1) 0.915 (−0.000 ± 0.065); fidelity
      0.206 / 0.200 against 0.201, privacy ok on 10 of 10. Pooling fits does not average their errors away, and
      three times the parameters would break the families' 1–2 M budget anyway.
    - Exact repeats at decoding: a range bin decodes each packet's size independently, while real flows repeat an
      earlier packet's exact size when they repeat its token (0.9–1.0 of the time in 10 of 14 classes; LLMNR's
      query, TLS and HTTP record sizes). Copying the earlier size with each class's chance-corrected rate, on the
      same ten transformer fits decoded both ways: 0.921 against 0.915 (+0.006 ± 0.022), fidelity level
      (+0.000), LLMNR F1 0.843 either way, copy rate at most 0.047 against 0.044. Not adopted: the networks lose
      LLMNR to other classes' flows, not by its own sizes.
    - Context noise that keeps the direction pattern (a packet swapped only for another flow's packet of the same
      direction at that position; patched in the harness): transformer 0.929 against 0.915 with generator seed 0
      and 0.876 against 0.894 with seed 1 (pooled over the 20 fits −0.002 ± 0.028, fidelity 0.003 worse); SSM
      0.946 against 0.959 (−0.014 ± 0.058, fidelity level); privacy ok on every split. It brings the unanswered
      DNS queries part of the way back (transformer 0.12–0.18 of its DNS flows on split seeds 0, 3 and 5) without
      a gain. Not adopted.
    - Context noise kept off the first two packets (the query and what follows it; patched in the harness),
      transformer, generator seeds 0 and 1: 0.880 and 0.868 against 0.915 and 0.894 (pooled −0.031 ± 0.043),
      fidelity 0.006 worse, privacy ok on every split; the unanswered DNS queries stay at 0.14–0.20. So the
      excess does not come from noise on the first packets alone. Not adopted.
20. The held-out split seeds 10–19 with two fit seeds (2026-12-07, the same harness; item 14 measured them with
    generator seed 0 only): the chain 0.921, fidelity 0.241, privacy ok on 0 of 10. Transformer: 0.952 with
    generator seed 0 (item 14: 0.949) and 0.909 with seed 1 (paired with the chain +0.031 ± 0.069 and −0.012 ±
    0.067), fidelity 0.222 / 0.221. SSM: 0.936 and 0.977 (+0.016 ± 0.093 and +0.056 ± 0.072), fidelity 0.233 /
    0.225. Privacy ok on 10 of 10 for every fit. So on these splits target (c) passes with one seed and fails with
    the other, and so does (b); over the 20 fits the transformer is +0.009 above the chain (0.930) and the SSM
    +0.036 (0.957), every network better on fidelity and private where the chain is not.
21. What the transformer lacks against the SSM, screened on split seeds 0–9 and checked on 10–19 (2026-12-07, the
    same harness; each variant fitted with generator seeds 0 and 1 on every split, 3 draws per fit, paired with the
    defaults' fit of the same split and seed, which score 0.915 / 0.894 there). Pooled over the 20 fits:
    - sliding-window attention (each position attends to the class token and its last w positions, in every
      layer: the recency of the SSM's state and of the chain's short context), w = 2: −0.015 ± 0.037; w = 3:
      +0.006 ± 0.026; fidelity level;
    - sampling at temperature 0.9 (the noised networks' median DCR, 2.0, is half as much again as the held-out
      flows' 1.3): +0.026 ± 0.038, fidelity 0.005 ± 0.005 worse;
    - learning rate 2e-3 instead of 1e-3: +0.046 ± 0.048, fidelity level;
    - batch 32 instead of the batch rule's 64 (twice the updates, about 400): +0.053 ± 0.041 (0.975 / 0.941),
      fidelity 0.197 against 0.200, privacy ok on 20 of 20, median DCR 1.2 against 2.0 (held-out flows 1.3).
    The two that add optimisation lead. Batch 32 on the held-out split seeds 10–19, and with generator seed 2 on
    all 20 (60 fits against the defaults' 60): split seeds 10–19 0.939 against 0.927 (paired by split on the means of
    the three fits, +0.012 ± 0.037, higher on 6 of 10), split seeds 0–9 0.957 against 0.907 (+0.050 ± 0.064); over
    the 20 splits 0.948 against 0.917 (+0.031 ± 0.035) and the chain's 0.910, higher for each generator seed
    (0.953 / 0.937 / 0.953 against 0.934 / 0.901 / 0.916); fidelity 0.208 against 0.211 (+0.003 ± 0.004); the
    spread between the fits of a split is not smaller (0.046 against 0.041). But the privacy gate fails on 2 of
    the 30 held-out fits (split seeds 14 and 19, generator seed 2, in at least one draw of three; mean copy rate
    0.042 / 0.046 against a natural 0.026 / 0.008), where the defaults pass on 60 of 60. Not adopted: the gain
    that survives the held-out splits is inside their noise, and it comes, as in items 7 and 13, with the flows
    moving onto the training flows.
22. The set no default was chosen on, with today's code: the CESNET-MINER22 PPI sample (2026-12-07; 2,799 training
    flows, Miner or Other, split by flow, so no capture rule applies; split seeds 0–3, ``/tmp`` harness; the chain,
    transformer and SSM scored with 3 draws, diffusion with 1, as sampling its 3,600 flows takes about 5 min on one
    core). TSTR/TRTR with fidelity in brackets: the chain 0.990 (0.110); transformer 0.991 (0.097), better on
    fidelity on 4 of 4 splits; SSM 0.990 (0.108), level with the chain (0.9895 against 0.9896); diffusion 0.964
    (0.132), below the chain on both figures on every split. Privacy ok everywhere (the networks' copy rate
    0.019–0.034 against a natural 0.079–0.110). Where diffusion loses (split seed 0):
    - The Random Forest trained on its flows misses 30 of the 401 real Miner test flows (the chain's 11), mostly
      TLS-like Miner flows: a 517-byte first packet, answers of 1,350–1,460 bytes, then a fixed run of small
      packets. Of 600 Miner flows it samples, 2.5 % open with 500 bytes or more and 6.8 % hold a packet of 1,000
      bytes or more, against 6.5 % and 14.1 % of the training Miner flows (the chain 4.3 / 13.0 %, the transformer
      7.7 / 17.5 %): the class's minor mode is dropped.
    - Guidance drops it: the same fit sampled at scale 1 gives 5.2 / 12.0 % (DDIM noise eta 1: 2.0 / 6.8 %; 200
      steps: 2.5 / 8.0 %). But unguided, the Random Forest still misses the same 30 Miner flows (and 9 Other flows
      instead of 5): TSTR/TRTR 0.961, fidelity 0.118. The denoiser does not reproduce those flows' exact packet
      runs, which the chain and the transformer build packet by packet.
    - 120 epochs instead of 60 (splits 0–2): 0.970 against 0.964 on the same splits, fidelity 0.121 against 0.131.
    - Guidance only at the noise levels σ in (0.3, 5] (34 of the 50 DDIM steps, 16 % fewer network passes; the
      guidance interval of Kynkäänniemi et al., NeurIPS 2024, now the settings ``guidance_sigma_min`` and
      ``guidance_sigma_max``), the same fits: at scale 1.5 0.970 (higher on 3 of 4), fidelity 0.119 (better on 4
      of 4); at scale 2.0 0.975, fidelity 0.124. On the bench's sets, refitted defaults of split seeds 0–3 scored
      both ways (1 draw): ndpi-pcaps 0.905 against 0.919, fidelity 0.212 against 0.217 (better on 3 of 4);
      requet 0.989 against 0.991, fidelity 0.118 against 0.117; at scale 2.0 inside the interval, requet 0.991 and
      0.117, level on both, and ndpi-pcaps 0.943 against 0.919 on split seeds 0–3 but lower on each of 4–9: over
      the ten splits 0.930 against 0.948 (paired −0.017 ± 0.062, higher on 2 of 10), fidelity level (0.197, better
      on 5 of 10); privacy ok on every split in every variant. Not the default: it helps the one set where
      guidance drops a mode and nowhere else, and iot-sentinel, whose 29 classes set the scale of 1.5 (item 6),
      is not measured with it (a split there takes about 70 min on one core).
    Diffusion's gap on this set (0.02–0.03) is outside the spread between its splits (0.962–0.966) and none of
    these closes it.
23. Diffusion trained with a cross-entropy on its bits (2026-12-07; the setting ``target="bits"``: the denoiser
    predicts each analog bit's probability, CDCD-style, and sampling reads the expected bits through ``v``; item
    22 found the denoiser not reproducing exact packet runs). Fresh fits with every other default, ``/tmp``
    harness, the bench's scoring, against the bench's cells of the default (``target="v"``) and of the chain on
    the same splits; TSTR/TRTR with fidelity in brackets:
    - iot-sentinel, 1 draw: split seed 0 0.886 (0.085) against 0.839 (0.094), the chain 0.787 (0.110); split seed 1
      0.898 (0.075) against 0.822 (0.072), the chain 0.773 (0.107); privacy ok on both (copy rate 0.26 against a
      natural 0.45–0.49, median DCR 0.10 against a held-out 0.05). Mean +0.061 over the default, fidelity level.
    - ndpi-pcaps, split seeds 0–9 × 3 draws: 0.923 against 0.904 (paired +0.019 ± 0.059, higher on 5 of 10), the
      chain 0.899; fidelity 0.201 against 0.197 (worse by 0.004 ± 0.005, better on 2 of 10; the chain 0.210). Its
      flows sit nearer the training flows (median DCR 0.83–1.33 against 1.49 for the default), and the privacy
      gate fails on split seed 0 (copy rate 0.063 against a natural 0.011; DCR 0.83 against a held-out 0.82).
    - requet, split seeds 0, 1, 3, 6, 8 × 3 draws: 0.986 against 0.986 (+0.000 ± 0.007), fidelity 0.097 against
      0.098; the chain 0.998 (0.116). The gap to the chain (item 13) stays.
    - CESNET-MINER22 PPI (item 22), split seeds 0–3, 1 draw: 0.969 against 0.964 (+0.004 ± 0.013, higher on 3 of
      4), fidelity 0.122 against 0.132 (better on 4 of 4, by 0.010 ± 0.003); the chain 0.990 (0.110).
    Fit times (CPU, one thread, the other core busy): 95–111 s on requet, 287–303 s on CESNET, 2,120–2,130 s on
    iot-sentinel, against the bench's 57–75 s and 990–1,220 s for the default on 2026-12-03; the loss costs the
    same, and session 21's default CESNET fits on this machine took 250–306 s, so the difference is the machine's
    load, not compared on the same load. Not the default yet: it gains where the classes are many (iot-sentinel)
    and on fidelity where flows are long-tailed (CESNET), is level on requet, and on ndpi-pcaps trades fidelity
    and one split's privacy for TSTR inside the split noise; adopting it needs the bench's refit of every
    diffusion cell (``--fresh diffusion``, 2–4 h of the 2 cores, most of it iot-sentinel's five 120-epoch fits).
    The bench itself with the default switched (2026-12-07, under way; the committed cells of the other families
    re-keyed into its cache, so only diffusion's are computed; 4 of 26 diffusion cells so far): iot-sentinel split
    seeds 0, 1, 2, 4 give 0.886 (0.085), 0.898 (0.075), 0.922 (0.083) and 0.889 (0.073) against the default's
    0.839 (0.094), 0.822 (0.072), 0.873 (0.090) and 0.837 (0.080): +0.056 ± 0.014, higher on 4 of 4, fidelity
    better on 3 of 4; privacy ok on all four. Seeds 0 and 1 reproduce the harness's figures to the digit (a fit
    on CPU with one thread is deterministic). Fit 1,988–2,106 s, cell 3,114–3,280 s, two cells at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package: its report module sits beside

from quality_report import GENAI, aggregate, check_targets, fmt, paired_against_markov, plot, render_markdown  # noqa: E402

from ntg.families import FAMILIES  # noqa: E402

DATASETS = ("iot-sentinel", "ndpi-pcaps", "requet")
AUG_FAMILIES = ("markov", *GENAI)  # the strongest baseline beside the networks
SPLIT_SEEDS = (0, 1, 2, 3, 4)  # the issue asks for at least 3; one split moves a family by up to 0.4 on ndpi-pcaps
SMALL_SET_SEEDS = tuple(range(10))  # sets under data_rules.SMALL_DATA_FLOWS training flows: cheap fits, wider noise
SMALL_SET_SCORING_SEEDS = (0, 1, 2)  # and each of their cells sampled and scored three times (item 11)
AUG_SEEDS = (0, 1, 2)
FIT_KEYS = ("fit_s", "params", "best_epoch", "epochs_run", "train_device", "train_flows")  # what a re-score keeps


# ---------------------------------------------------------------------------------------------- cells (workers)
def _one_thread() -> None:
    """Every worker trains and scores on one thread (set before any work; OMP_NUM_THREADS is inherited)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _fit(gen: Any, train: Any, val: Any, task: dict[str, Any]) -> float:
    """Fit ``gen`` on (train, val), the neural families with the device (and the smoke-test epochs override) as
    ``train_config``; the wall seconds of the fit."""
    from ntg.models.neural import NeuralGenerator

    config = {"device": task["device"], **({"epochs": task["epochs"]} if task["epochs"] else {})}
    started = time.perf_counter()
    gen.fit(train, val, **({"train_config": config} if isinstance(gen, NeuralGenerator) else {}))
    return time.perf_counter() - started


def _generator_dir(task: dict[str, Any]) -> Path:
    """Where a quality cell keeps its fitted generator, for the augmentation cell of the same split to reuse."""
    folder = f"{cache_name(task['dataset'])}-s{task['seed']}-{task['family']}"
    return Path(task["path"]).parent.parent / "generators" / folder


def cache_name(dataset: str) -> str:
    """A dataset's name in the cache's folder and file names: a registry name as it is; a path to the user's own
    captures or flow file as its stem and a digest of the resolved path (two ``captures/`` folders stay apart)."""
    if "/" not in dataset and os.sep not in dataset:
        return dataset
    resolved = str(Path(dataset).expanduser().resolve())
    return f"{Path(resolved).stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def _fit_config(task: dict[str, Any]) -> dict[str, Any]:
    """The settings a fitted generator depends on (the dataset and, for neural families, epochs and device)."""
    return {k: v for k, v in task["config"].items() if k not in ("fractions", "seeds", "scoring", "scoring_seeds")}


def scoring_key(kind: str) -> str:
    """A digest of the evaluation code a cell of ``kind`` runs (``ntg/evaluation/*.py``, less ``augmentation.py``
    for a quality cell, which never runs it): a cell scored by other code is scored again."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "ntg" / "evaluation").glob("*.py")):
        if not (kind == "quality" and path.name == "augmentation.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _stored_fit(task: dict[str, Any]) -> dict[str, Any] | None:
    """The fit facts of this cell's stored record when its generator is stored with the same fit settings (only
    the scoring changed): the cell is then scored again with that generator, not refitted."""
    from ntg.utils.io import read_json

    path, config = Path(task["path"]), _generator_dir(task) / "bench-config.json"
    try:
        record = read_json(path) if path.exists() and config.exists() else None
        same = record is not None and read_json(config) == _fit_config(task) == _fit_config(record)
    except ValueError:
        return None
    return {k: record.get(k) for k in FIT_KEYS} if same and record else None


def _fitted_or_fit(task: dict[str, Any], train: Any, val: Any) -> tuple[Any, float | None]:
    """The quality cell's generator of this split when it was fitted with the same settings, else a new fit."""
    from ntg.models.base import create_generator, load_generator
    from ntg.utils.io import read_json

    folder = _generator_dir(task)
    reuse = not task.get("refit") and (folder / "bench-config.json").exists()  # refit: the quality cell may be running
    if reuse and read_json(folder / "bench-config.json") == _fit_config(task):
        return load_generator(folder), None
    gen = create_generator(task["family"])
    return gen, _fit(gen, train, val, task)


def quality_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Fit one default family on one prepared split (or load its stored generator when only the scoring changed)
    and score it with the fast profile on the test split."""
    from ntg.data.dataset import PreparedDataset
    from ntg.evaluation.fast import fast_scores
    from ntg.models.base import create_generator, load_generator
    from ntg.training.runs import train_inputs
    from ntg.utils.io import write_json

    started, dataset = time.perf_counter(), PreparedDataset.load(task["data"])
    stored = None if task.get("refit") else _stored_fit(task)
    if stored:
        gen, fit = load_generator(_generator_dir(task)), stored
    else:
        gen = create_generator(task["family"])
        train, val = train_inputs(dataset, gen.n_packets)
        fit_s = _fit(gen, train, val, task)
        gen.save_pretrained(_generator_dir(task))
        write_json(_generator_dir(task) / "bench-config.json", _fit_config(task))
        log = gen.fit_log_ or {}
        fit = {"fit_s": fit_s, "params": gen.num_parameters(), "best_epoch": log.get("best_epoch"),
               "epochs_run": len(log.get("history") or []) or None, "train_device": log.get("device", "cpu"),
               "train_flows": len(train)}
    runs = [fast_scores(gen, dataset, split="test", seed=s, classifier_options={"n_jobs": 1})
            for s in task.get("scoring_seeds", [0])]
    return {**_key(task), **mean_scores(runs), **fit, "rescored": bool(stored),
            "cell_s": time.perf_counter() - started}


def mean_scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's scores over its scoring seeds: the mean of each figure and of the per-seed TSTR/TRTR (None if a
    TRTR F1 is 0), ``eval_seconds`` summed, ``privacy_ok`` only when the gate passed for every seed, and the
    per-seed ratios in ``ratio_per_scoring_seed``."""
    ratios = [r["tstr_f1"] / r["trtr_f1"] if r["trtr_f1"] else None for r in runs]
    out: dict[str, Any] = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0] if k not in ("privacy_ok",)}
    out["eval_seconds"] = sum(r["eval_seconds"] for r in runs)
    out["privacy_ok"] = all(r["privacy_ok"] for r in runs)
    out["ratio"] = None if None in ratios else sum(ratios) / len(ratios)
    if len(runs) > 1:
        out["ratio_per_scoring_seed"] = ratios
    return out


def augmentation_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Low-data augmentation of one family: fitted on the full training split, and refitted on each fraction."""
    from ntg.data.dataset import PreparedDataset
    from ntg.evaluation.augmentation import run_augmentation
    from ntg.models.base import create_generator
    from ntg.training.runs import train_inputs

    started, dataset = time.perf_counter(), PreparedDataset.load(task["data"])
    train, val = train_inputs(dataset, create_generator(task["family"]).n_packets)
    gen, fit_s = _fitted_or_fit(task, train, val)  # fit_s None: the quality cell's generator was reused

    def factory(subset: Any, seed: int) -> Any:  # a fresh default generator, seeded like evaluate's refits
        fresh = create_generator(task["family"], seed=seed) if seed else create_generator(task["family"])
        _fit(fresh, subset, None, task)
        return fresh

    result = run_augmentation(train, dataset.test.first(gen.n_packets), synthetic_source=gen,
                              fraction_generator=factory, fractions=tuple(task["fractions"]),
                              seeds=tuple(task["aug_seeds"]), classifier="rf", n_packets=gen.n_packets,
                              classifier_options={"n_jobs": 1})
    return {**_key(task), "augmentation": result, "fit_s": fit_s, "cell_s": time.perf_counter() - started}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and store its record atomically in the cache (the unit of resumption)."""
    from ntg.utils.io import write_json

    record = (augmentation_cell if task["kind"] == "augmentation" else quality_cell)(task)
    record["config"] = task["config"]
    write_json(task["path"], record)
    return record


def _key(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("kind", "dataset", "seed", "family")}


# ---------------------------------------------------------------------------------------------- planning
def default_seeds(n_train: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(split seeds, scoring seeds) for a set of ``n_train`` training flows: 0–4 and 0 on large sets; on a set under
    ``SMALL_DATA_FLOWS`` training flows, where a fit takes seconds, a split moves a family by up to 0.4 and the
    sampling seed alone by 0.1 (ndpi-pcaps, item 11), split seeds 0–9, each cell scored with seeds 0–2."""
    from ntg.models.data_rules import small_data

    return (SMALL_SET_SEEDS, SMALL_SET_SCORING_SEEDS) if small_data(n_train) else (SPLIT_SEEDS, (0,))


def prepare_all(args: argparse.Namespace) -> tuple[dict[tuple[str, int], Any], dict[str, tuple[list, list]]]:
    """Prepare every (dataset, split seed) in this process before any cell starts (a cache hit when up to date);
    the prepared splits and each benchmarked dataset's (split seeds, scoring seeds): ``--seeds`` and
    ``--scoring-seeds`` where given, else :func:`default_seeds` of its split seed 0."""
    prepared: dict[tuple[str, int], Any] = {}
    seeds: dict[str, tuple[list, list]] = {}
    for name in dict.fromkeys([*args.datasets, *args.aug_datasets]):
        given = bool(args.seeds and args.scoring_seeds)  # else split seed 0 tells the set's size
        split, scoring = ((), ()) if given else default_seeds(len(_prepare(args, name, 0, prepared).train))
        seeds[name] = (sorted(args.seeds or split), sorted(args.scoring_seeds or scoring))
        for seed in sorted(set(seeds[name][0]) | ({0} if name in args.aug_datasets else set())):
            _prepare(args, name, seed, prepared)
    return prepared, {name: seeds[name] for name in args.datasets}


def _prepare(args: argparse.Namespace, name: str, seed: int, prepared: dict[tuple[str, int], Any]) -> Any:
    """One prepared split, kept in ``prepared`` (prepared once per run)."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset

    if (name, seed) in prepared:
        return prepared[name, seed]
    started = time.perf_counter()
    cap = f"-cap{args.max_flows_per_class}" if args.max_flows_per_class else ""
    options = PrepareOptions(split_seed=seed, max_flows_per_class=args.max_flows_per_class)
    ds = prepare_dataset(name, args.cache / f"{cache_name(name)}-s{seed}{cap}", options, root=args.data_root,
                         offline=True, jobs=args.jobs, progress=False, log=lambda m: None)
    prepared[name, seed] = ds
    print(f"prepared {name} split seed {seed}: {len(ds.train)}/{len(ds.val)}/{len(ds.test)} flows "
          f"train/val/test, {len(ds.classes)} classes ({time.perf_counter() - started:.1f} s)", flush=True)
    return ds


def plan(args: argparse.Namespace, prepared: dict[tuple[str, int], Any], seeds: dict[str, tuple[list, list]]
         ) -> list[dict[str, Any]]:
    """Every cell as a task, longest first (neural families on the largest training splits)."""
    tasks, scoring = [], {kind: scoring_key(kind) for kind in ("quality", "augmentation")}
    skip = {tuple(x.split(":", 1)) for x in args.exclude}
    wanted = [("quality", d, s, f) for d in args.datasets for s in seeds[d][0] for f in args.families
              if (d, f) not in skip]
    wanted += [("augmentation", d, 0, f) for d in args.aug_datasets for f in args.aug_families]
    for kind, name, seed, family in wanted:
        ds = prepared[name, seed]
        neural = {"epochs": args.epochs, "device": args.device} if family in GENAI else {}  # baselines ignore them
        config = {"dataset_key": ds.meta.get("cache_key"), **neural, "scoring": scoring[kind]}
        scoring_seeds = seeds[name][1] if kind == "quality" else [0]
        if scoring_seeds != [0]:  # absent for the one seed 0, as in cells stored before scoring seeds existed
            config["scoring_seeds"] = scoring_seeds
        if kind == "augmentation":
            config.update(fractions=list(args.aug_fractions), seeds=list(args.aug_seeds))
        # augmentation after the quality cells, so that it finds their fitted generators (seed 0)
        cost = len(ds.train) * (100 if family in GENAI else 1) * (0.5 if kind == "augmentation" else 1)
        tasks.append({"kind": kind, "dataset": name, "seed": seed, "family": family, "data": str(ds.root),
                      "epochs": args.epochs, "device": args.device, "fractions": list(args.aug_fractions),
                      "aug_seeds": list(args.aug_seeds), "scoring_seeds": scoring_seeds, "config": config,
                      "cost": cost * len(scoring_seeds) ** 0.5,
                      "path": str(args.cache / "cells" / f"{kind}-{cache_name(name)}-s{seed}-{family}.json")})
    return sorted(tasks, key=lambda t: -t["cost"])


def cached(task: dict[str, Any]) -> dict[str, Any] | None:
    """The stored record of a cell computed with the same dataset and settings, else None."""
    from ntg.utils.io import read_json

    path = Path(task["path"])
    try:
        record = read_json(path) if path.exists() else None
    except ValueError:
        return None
    return record if record and record.get("config") == task["config"] else None


def run_cells(tasks: list[dict[str, Any]], jobs: int, fresh: list[str] | None, started: float
              ) -> tuple[list, list]:
    """Reuse or compute every cell (``jobs`` spawned workers; in this process when 1); (records, errors)."""
    records, errors, todo = [], [], []
    for task in tasks:
        refit = fresh is not None and (not fresh or task["family"] in fresh)
        record = None if refit else cached(task)
        if record is None:
            todo.append({**task, "refit": refit})
        else:
            records.append(record)
            print(progress_line(record, started, "cached"), flush=True)
    if jobs <= 1:
        _one_thread()
        outcomes = ((t, _attempt(run_task, t)) for t in todo)
    else:
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
        futures = {pool.submit(run_task, t): t for t in todo}
        outcomes = ((futures[f], _attempt(f.result)) for f in as_completed(futures))
    for task, (record, error) in outcomes:
        if error is None:
            records.append(record)
            print(progress_line(record, started), flush=True)
        else:
            errors.append({**_key(task), "error": error})
            print(f"{task['kind']} {task['dataset']} s{task['seed']} {task['family']}: ERROR {error}", flush=True)
    if jobs > 1:
        pool.shutdown()
    return records, errors


def _attempt(fn: Any, *args: Any) -> tuple[Any, str | None]:
    try:
        return fn(*args), None
    except Exception as exc:  # one failed cell must not lose the others
        return None, f"{type(exc).__name__}: {exc}"


def progress_line(r: dict[str, Any], started: float, note: str = "") -> str:
    head = f"[{time.perf_counter() - started:7.1f} s] {r['kind']} {r['dataset']} s{r['seed']} {r['family']}:"
    fit = "generator of the quality cell" if r["fit_s"] is None else f"fit {r['fit_s']:.1f} s"
    fit += " (stored generator scored again)" if r.get("rescored") else ""
    tail = f"{fit}, cell {r['cell_s']:.1f} s{' (' + note + ')' if note else ''}"
    if r["kind"] == "augmentation":
        rows = {x["method"]: x["macro_f1"]["mean"] for x in r["augmentation"]["rows"]}
        return f"{head} " + ", ".join(f"{m} {fmt(v)}" for m, v in rows.items()) + f"; {tail}"
    return (f"{head} TSTR/TRTR {fmt(r['ratio'])} (TSTR {r['tstr_f1']:.3f}), fidelity {r['fidelity']:.3f}, "
            f"copy {r['copy_rate']:.3f} vs {r['natural_copy_rate']:.3f}, DCR {r['dcr_synth_median']:.3f} vs "
            f"{r['dcr_holdout_median']:.3f}, privacy {'ok' if r['privacy_ok'] else 'NOT ok'}; {tail}")


# ---------------------------------------------------------------------------------------------- driver
def environment(device: str, jobs: int) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    resolved = ("cuda" if cuda else "cpu") if device == "auto" else device
    return {"torch": torch.__version__, "device_requested": device, "device": resolved, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "jobs": jobs, "load_before": os.getloadavg()[0],
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "python": sys.version.split()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--datasets", nargs="*", default=list(DATASETS),
                   help="registry names, or paths to your own captures or flow files (what `ntg prepare` takes)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="split seeds of every dataset (default: 0-4, or 0-9 under 4,096 training flows)")
    p.add_argument("--scoring-seeds", nargs="+", type=int, default=None,
                   help="sampling/classifier seeds each quality cell is scored with and averaged over (default: 0, "
                        "or 0 1 2 under 4,096 training flows)")
    p.add_argument("--families", nargs="*", default=list(FAMILIES))
    p.add_argument("--exclude", nargs="*", default=[], metavar="DATASET:FAMILY",
                   help="quality cells to leave out, e.g. iot-sentinel:diffusion (too slow for a CPU run)")
    p.add_argument("--aug-datasets", nargs="*", default=["iot-sentinel"],
                   help="datasets of the augmentation experiment ('none' or nothing: no augmentation)")
    p.add_argument("--aug-families", nargs="*", default=list(AUG_FAMILIES))
    p.add_argument("--aug-fractions", nargs="+", type=float, default=[0.01])
    p.add_argument("--aug-seeds", nargs="+", type=int, default=list(AUG_SEEDS), help="subset/classifier seeds")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (1: run in this process)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="for the neural families")
    p.add_argument("--epochs", type=int, default=None, help="override the neural epochs (smoke tests only)")
    p.add_argument("--max-flows-per-class", type=int, default=None, help="cap the prepared sets (smoke tests)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/ntg-bench/quality"))
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("NTG_DATA_ROOT", REPO.parent / "shared" / "datasets")))
    p.add_argument("--fresh", nargs="*", default=None, metavar="FAMILY",
                   help="recompute (refit and score) every cell, or the cells of these families, instead of reusing "
                        "the cache")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality",
                   help="output stem: writes STEM.json, STEM.md and STEM.png")
    args = p.parse_args(argv)
    args.aug_datasets = [d for d in args.aug_datasets if d != "none"]  # `--aug-datasets none` reads better
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    from ntg.utils.io import atomic_path, write_json

    started = time.perf_counter()
    env = environment(args.device, args.jobs)
    prepared, seeds = prepare_all(args)
    records, errors = run_cells(plan(args, prepared, seeds), args.jobs, args.fresh, started)
    key = ("dataset", "seed", "family")
    quality = sorted((r for r in records if r["kind"] == "quality"), key=lambda r: tuple(r[k] for k in key))
    aug = sorted((r for r in records if r["kind"] == "augmentation"), key=lambda r: (r["dataset"], r["family"]))
    aggs = aggregate(quality)
    aggs = {d: {f: aggs[d][f] for f in args.families if f in aggs[d]} for d in args.datasets if d in aggs}
    checks = check_targets(aggs)
    paired = paired_against_markov([r for r in quality if r["dataset"] in aggs])
    wall = time.perf_counter() - started
    env["load_after"] = os.getloadavg()[0]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(split_seeds={d: v[0] for d, v in seeds.items()}, scoring_seeds={d: v[1] for d, v in seeds.items()})
    out = {ext: Path(f"{args.out}.{ext}") for ext in ("json", "md", "png")}
    write_json(out["json"], {
        "settings": settings, "environment": env, "records": quality, "aggregates": aggs, "targets": checks,
        "paired_against_markov": paired,
        "augmentation": aug, "errors": errors, "wall_s": wall})
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(render_markdown(aggs, checks, aug, paired))
    plot(aggs, out["png"])
    for c in checks:
        print(f"{c['status']:<4} ({c['target']}) {c['dataset']}: {c['detail']}")
    print(f"{len(records)} cells ({len(errors)} failed) in {wall:.1f} s on {env['device']} with {args.jobs} jobs; "
          f"wrote {args.out}.json/.md/.png", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
