// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface ISlashable {
    function slash(address keeper, address reporter) external;
}

/// @title SlashRelay
/// @notice A job target that tries to reach `KeeperRegistry.slash` indirectly: it forwards the
///         call it receives to the registry. Tests use it to show that no job can slash, since
///         the registry trusts only the TaskManager and a job never calls with its address.
contract SlashRelay {
    address public immutable registry;

    constructor(address registry_) {
        registry = registry_;
    }

    /// @notice Asks the registry to slash `keeper` in favour of `reporter`; reverts when it refuses.
    function relay(address keeper, address reporter) external {
        ISlashable(registry).slash(keeper, reporter);
    }
}
