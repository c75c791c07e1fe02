//! Conversions between [`Plane`]s and libtorch tensors.

use crate::plane::Plane;
use tch::{Device, Kind, Tensor};

/// A plane as a float32 `[1, 1, H, W]` tensor on `device`.
pub fn plane_to_tensor(p: &Plane, device: Device) -> Tensor {
    Tensor::from_slice(&p.data).reshape([1, 1, p.height as i64, p.width as i64]).to_device(device)
}

/// The first image of an `[N, 1, H, W]` (or `[H, W]`) tensor as a plane.
pub fn tensor_to_plane(t: &Tensor) -> Plane {
    let s = t.size();
    let (h, w) = (s[s.len() - 2] as usize, s[s.len() - 1] as usize);
    let flat = t.to_device(Device::Cpu).to_kind(Kind::Float).reshape([-1]).narrow(0, 0, (h * w) as i64).contiguous();
    let data = Vec::<f32>::try_from(&flat).expect("float tensor to vec");
    Plane::from_vec(w, h, data)
}

/// Picks a device from a user string: `auto` (CUDA if available), `cpu`, `cuda`, `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, crate::Error> {
    let s = s.trim().to_ascii_lowercase();
    let cuda = |i: usize| {
        if tch::Cuda::is_available() && i < tch::Cuda::device_count() as usize {
            Ok(Device::Cuda(i))
        } else if tch::Cuda::is_available() {
            Err(crate::Error::Config(format!(
                "cuda:{i} requested but only {} CUDA device(s) exist",
                tch::Cuda::device_count()
            )))
        } else {
            Err(crate::Error::Config(format!("device '{s}' requested but CUDA is not available on this machine")))
        }
    };
    match s.as_str() {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(crate::Error::Config(format!("unknown device '{s}' (expected auto, cpu, cuda or cuda:N)"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_tensor_round_trip() {
        let p = Plane::from_fn(5, 3, |x, y| x as f32 * 0.1 + y as f32);
        let t = plane_to_tensor(&p, Device::Cpu);
        assert_eq!(t.size(), [1, 1, 3, 5]);
        assert_eq!(t.double_value(&[0, 0, 2, 4]) as f32, p.get(4, 2));
        assert_eq!(tensor_to_plane(&t), p);
    }

    #[test]
    fn devices() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        if !tch::Cuda::is_available() {
            let e = parse_device("cuda").unwrap_err().to_string();
            assert!(e.contains("CUDA is not available"), "{e}");
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
        }
    }
}
