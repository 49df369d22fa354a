//! FindLicense: the license of the repository's HEAD, detected in-process;
//! an empty answer when HEAD does not resolve or nothing looks like a
//! license.

use crate::error::Result;
use crate::git::license;
use crate::service::Deps;
use cairn_proto::gitaly::{FindLicenseRequest, FindLicenseResponse};

pub(super) async fn handle(deps: &Deps, req: FindLicenseRequest) -> Result<FindLicenseResponse> {
    deps.read(req.repository.as_ref(), |repo, _| {
        Ok(license::find(repo)?.map_or_else(FindLicenseResponse::default, |l| FindLicenseResponse {
            license_short_name: l.short_name,
            license_name: l.name,
            license_url: l.url,
            license_path: l.path,
            license_nickname: l.nickname,
        }))
    })
    .await
}
