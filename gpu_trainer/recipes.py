"""Every budget, margin, resolution and grid the trainer decides with, in one place. The chosen recipe's
values are written into config.json by the training (classification.train_classifier's `recipe`), so a
model says what it was trained with; this file says what the trainer would choose from.
"""

from __future__ import annotations

from typing import Any

# -- time -------------------------------------------------------------------------------------------
QUICK_CPU_BUDGET_S = (
    45.0  # Quick classification on a CPU: 10 tags x 50 images train, evaluate, export in a minute
)
GPU_BUDGET_S = 600.0  # Quick classification on a GPU
DETECTION_QUICK_CPU_BUDGET_S = 150.0  # Quick detection on a CPU: head training across folds + the final model
EXPORT_RESERVE_CPU_S = 12.0  # left of a classification budget for the final fit and export, on a CPU
EXPORT_RESERVE_GPU_S = 5.0  # the same on a GPU
BACKBONE_COST_FACTOR = 1.5  # another backbone is tried when 1.5x the first candidate's cost still fits
FINETUNE_COST_FACTOR = 1.15  # a fine-tune's measured step time x its steps, with this margin, must fit

# -- cross-validation (cv.py) -------------------------------------------------------------------------
HELD_OUT_ABOVE = 3000  # more images than this: one stratified held-out split instead of k folds
HELD_OUT_FRACTION = 0.2
MAX_FOLDS = 5
SCREEN_ABOVE = 200  # from this many images, candidates are screened on 2 folds before the winner's full CV

# -- the linear recipe (linear_head.py) ----------------------------------------------------------------
L2_GRID = (0.003, 0.01, 0.03, 0.1)  # sklearn-style C per image: penalty = 1 / (2 C n) * |W|^2
GRID_MAX_IMAGES = 5000  # above this (on a CPU) only the global features are tried: the grid ones are 3x wider

# -- the fine-tune recipe (finetune.py) ----------------------------------------------------------------
FINETUNE_VIEWS = 4  # augmented views of each image whose frozen-prefix outputs are computed once
FINETUNE_UNFREEZE, FINETUNE_EPOCHS, FINETUNE_LR = 5, 20, 3e-4  # what Quick tries when the budget allows
FINETUNE_CPU_RESOLUTION = 160  # a fine-tune on a CPU runs at most at this resolution
FINETUNE_QUICK_FOLDS = 2  # Quick scores its fine-tune on at most this many folds
FINETUNE_BATCH = 16  # images per fine-tuning step

# -- Advanced training's search (recipe_search.RecipeSearch.advanced) ------------------------------------
ADVANCED_RESOLUTIONS = (224, 288, 160)  # linear heads on each backbone at these; the first is the default
ADVANCED_FINETUNES = ((5, 20), (8, 30), (12, 40))  # (unfrozen stages, epochs), in the order tried
ADVANCED_PATIENCE = 3  # the search stops after this many candidates in a row that bring nothing

# -- retraining -------------------------------------------------------------------------------------------
WARM_START_CHANGE = 1.5  # Quick retraining reuses the previous recipe while the set grew or shrank by less

# -- how much better a candidate must score (CV log-likelihood per image) to be taken -------------------
FEATURE_VARIANT_MARGIN = 0.002  # the grid features over the global ones, for the same backbone
BACKBONE_MARGIN = 0.01  # another backbone over the default one
FINETUNE_MARGIN = 0.02  # a fine-tune over the best linear head
MIN_GAIN = 0.002  # Advanced training changes its recipe only for more than this (and its standard error)

# -- detection (detection.Recipe holds each recipe's defaults; these are what Quick and Advanced choose) ----
DETECTION_INPUT_SIZE = 320  # px, square
DETECTION_LARGE_INPUT_SIZE = 416  # Advanced also tries training the stride-32 stages at this size
DETECTION_QUICK_CPU_MAX_VIEWS = 720  # Quick on a CPU: about 720 backbone passes at most, the head in minutes
# Quick on a GPU and every Advanced recipe: more views, a longer schedule
# Any: spread into detection.Recipe(...) beside str fields, so its values are not all one type to the checker
DETECTION_LONG_SCHEDULE: dict[str, Any] = {"views": 10, "epochs": 60, "max_steps": 1500}
DETECTION_ADVANCED_FOLDS = 5
