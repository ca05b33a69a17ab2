"""The simulation's steps (participant level with ``--model``) as plain functions, as
:mod:`daninet_pipeline.preprocessing` holds the participant level's and
:mod:`daninet_pipeline.training` the group level's:

- :mod:`.subject`: the ages to simulate, one subject's simulation, back to native space.

The simulator itself (the trained networks at other ages) is :mod:`daninet_pipeline.model.simulate`.
"""
