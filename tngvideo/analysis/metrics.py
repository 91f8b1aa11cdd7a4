"""Moved to `tngvideo.metrics` (a low floor, so that the file workflows can use it). This name is
kept only for tools/video_rd_cost.py and tools/image_ceiling.py, which still import it from here;
new code imports `tngvideo.metrics`."""

from tngvideo.metrics import MS_SSIM_MIN_SIDE, luma, ms_ssim, mse, psnr, psnr_y

__all__ = ["MS_SSIM_MIN_SIDE", "luma", "ms_ssim", "mse", "psnr", "psnr_y"]
