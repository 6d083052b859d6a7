from .flow_time import noisy_sample, scheduler_output, time_from_timestep, velocity_target
from .scheduling_flow_match_euler import FlowMatchEulerScheduler, FlowMatchEulerSchedulerOutput

# importing this package may have imported diffusers first, before the pipelines could load (diffusers_registration)
from ..diffusers_registration import register_if_pending  # noqa: E402

register_if_pending()
