"""The one comparison behind every verdict (`bench report`, `bench race`): how far apart two candidates are on the
images they were both scored on, with an uncertainty that counts both sources of noise, and the verdict drawn from
all the comparisons of one group of candidates.

Two sources of noise (issue 24; docs/benchmarks.md, "Calibration on new images"):
- the training randomness: another seed (or another machine's kernels, bench/identity.py) trains another model;
- the sampling of the scored images: every seed of a fold is scored on the same validation images, so their luck is
  shared by all of that fold's instances and no number of seeds averages it away. What the user's next images bring
  is this term.

For two candidates on the (seed, fold) instances they share, with per-image outcomes (0/1 correct), fold f gives the
matrix D[s, i] = correct_a - correct_b over its shared seeds s and its validation images i. Its mean is the gap, and
its variance is estimated as a two-way crossed design: var(seed means) / S + var(image means) / N (each with its own
degrees of freedom, combined by Welch-Satterthwaite). That counts the seed-by-image interaction twice, so it errs on
the wide side; it is the closed form of the paired bootstrap over images within folds and over instances. Folds are
averaged with equal weight. Across two or more folds, what the fold gaps spread beyond their own noise is the
training set's effect (a random-effects term, as in a meta-analysis); the folds' training sets overlap (any two of
five share 3/4 of their images), so that term counts with Nadeau & Bengio's factor (1/F + n_valid/n_train), on F - 1
degrees of freedom. Folds that agree within their noise add nothing, so a large consistent gap on 3 folds separates;
folds that disagree widen the interval. Rows without per-image outcomes (older runs) bound the image term by the
largest discordance their error rates allow (conservative), and the words say so.

Claims (two-sided test, Student t): each comparison is tested at alpha / m, where m = k(k-1)/2 counts every pair
of the k candidates the leader was picked from (the leader is chosen from the data, so every pair could have been
the one reported; Bonferroni over the pairs keeps the family-wise rate of false "worse" claims at alpha whoever
leads). "Worse beyond noise" when that test rejects; "equivalent within the margin" when the printed interval
(1 - alpha/m) lies inside +-margin; otherwise "not separated".
"""
from .compare import Comparison, claim, compare_all, pair_level
from .gap import ALPHA, CLAIMS, INSTANCE, MARGIN, MIN_INSTANCES, Gap, gap
from .verdict import METHOD, Verdict, verdict

__all__ = ["ALPHA", "CLAIMS", "INSTANCE", "MARGIN", "MIN_INSTANCES", "METHOD", "Comparison", "Gap", "Verdict", "claim",
           "compare_all", "gap", "pair_level", "verdict"]
