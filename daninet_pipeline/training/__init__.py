"""The group level's steps (training and evaluating the model) as plain functions, as
:mod:`daninet_pipeline.preprocessing` holds the participant level's and
:mod:`daninet_pipeline.simulation` the simulation's:

- :mod:`.sessions`: the selected sessions with their derivatives, training records;
- :mod:`.evaluation`: the trained models against the baselines on the test split
  (the measurement and scoring: :mod:`daninet_pipeline.evaluation`);
- :mod:`.model_card`: the model card.

The model itself (networks, losses, trainer) is :mod:`daninet_pipeline.model`.
"""
