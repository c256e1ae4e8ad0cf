// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The registry view that other consortium contracts rely on.
interface IConsortiumRegistry {
    /// @notice True when `account` is a member whose status lets it change state (ACTIVE or WARNED).
    function isInGoodStanding(address account) external view returns (bool);

    /// @notice True when `account` has ever been admitted (whatever its status now).
    function isMember(address account) external view returns (bool);
}
